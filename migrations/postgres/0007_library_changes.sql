-- Serving processes that share a database read the library items another
-- process changed since their last look (Library::refresh), by updated_at.
CREATE INDEX library_items_updated ON library_items (updated_at);
