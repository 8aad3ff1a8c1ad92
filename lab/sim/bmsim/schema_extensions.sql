-- The extensions BlueMind's schema scripts create. Its schema installer runs every script in every
-- database it initialises, so `bj` and `bj-data` both get all of them: hstore, btree_gin, ltree and
-- unaccent in pg_catalog (not public), pg_stat_statements in the default schema (public). BlueMind
-- also creates pg_repack there; the lab's PostgreSQL has no pg_repack package, so it is left out.
CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA pg_catalog;
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA pg_catalog;
CREATE EXTENSION IF NOT EXISTS ltree WITH SCHEMA pg_catalog;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA pg_catalog;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
