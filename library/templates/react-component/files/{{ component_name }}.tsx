{% set name = component_name %}
{% set react_imports = ['useId'] + (['useState'] if collapsible else []) %}
import { {{ react_imports | join(', ') }}, type ReactNode } from "react";
{% if with_css_module %}

import styles from "./{{ name }}.module.css";
{% endif %}

export interface {{ name }}Props {
  /** The heading, which also names the region for assistive technology. */
  title: string;
  /** What the region holds. */
  children?: ReactNode;
{% if collapsible %}
  /** Whether it starts open; the reader toggles it from then on. */
  defaultOpen?: boolean;
{% endif %}
  /** Extra classes for the outer element. */
  className?: string;
}

/**
 * A titled region{% if collapsible %} the reader can collapse{% endif %}.
 *
 * It renders a `<section>` named by its heading, so it shows up as a
 * landmark in a screen reader's region list.
{% if collapsible %}
 * The toggle is a real `<button>` inside the heading, with `aria-expanded`
 * and `aria-controls`, so keyboard and screen-reader users get it for free.
{% endif %}
 *
 * @example
 * <{{ name }} title="Shipping">Free over $50.</{{ name }}>
 */
export function {{ name }}(props: {{ name }}Props) {
{% if collapsible %}
  const { title, children, defaultOpen = false, className } = props;
{% else %}
  const { title, children, className } = props;
{% endif %}
  const headingId = useId();
{% if collapsible %}
  const contentId = useId();
  const [open, setOpen] = useState(defaultOpen);
{% endif %}
{% if with_css_module %}
  const rootClass = className ? `${styles.root} ${className}` : styles.root;
{% endif %}

  return (
{% if with_css_module %}
    <section aria-labelledby={headingId} className={rootClass}>
{% else %}
    <section aria-labelledby={headingId} className={className}>
{% endif %}
{% if collapsible %}
      <h2 id={headingId}{% if with_css_module %} className={styles.heading}{% endif %}>
        <button
          type="button"
{% if with_css_module %}
          className={styles.toggle}
{% endif %}
          aria-expanded={open}
          aria-controls={contentId}
          onClick={() => setOpen((wasOpen) => !wasOpen)}
        >
          {title}
        </button>
      </h2>
{% if with_css_module %}
      <div id={contentId} className={styles.content} hidden={!open}>
        {children}
      </div>
{% else %}
      <div id={contentId} hidden={!open}>
        {children}
      </div>
{% endif %}
{% else %}
{% if with_css_module %}
      <h2 id={headingId} className={styles.heading}>
        {title}
      </h2>
{% else %}
      <h2 id={headingId}>{title}</h2>
{% endif %}
      <div{% if with_css_module %} className={styles.content}{% endif %}>{children}</div>
{% endif %}
    </section>
  );
}
