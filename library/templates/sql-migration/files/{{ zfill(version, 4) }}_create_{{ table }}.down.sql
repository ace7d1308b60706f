-- Undoes {{ version | zfill(4) }}_create_{{ table }}.up.sql.
{% if engine == 'postgres' %}
-- Dropping the table drops its indexes, trigger and policy with it.
DROP TABLE {{ table }};
{% if with_timestamps %}
DROP FUNCTION {{ table }}_touch_updated_at();
{% endif %}
{% else %}
-- Dropping the table drops its indexes and trigger with it.
DROP TABLE {{ table }};
{% endif %}
