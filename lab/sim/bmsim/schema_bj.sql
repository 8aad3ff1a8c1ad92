-- Simulated BlueMind `bj` database (directory, domains, servers, system configuration).
-- Table names follow BlueMind's; columns are the subset the simulator and the migration use.
-- Extensions (hstore for t_systemconf): schema_extensions.sql, applied first.

CREATE TABLE IF NOT EXISTS t_domain (
    name        text PRIMARY KEY,          -- domain uid, e.g. lab.test
    label       text NOT NULL,
    aliases     text[] NOT NULL DEFAULT '{}',
    global      boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS t_server (
    id          serial PRIMARY KEY,
    ip          text NOT NULL,
    fqdn        text NOT NULL,
    name        text NOT NULL,
    tags        text NOT NULL              -- comma separated, e.g. 'bm/core,mail/imap,mail/smtp'
);

-- One row; `configuration` holds the system configuration (mynetworks, fwAdditionalIPs, ...).
CREATE TABLE IF NOT EXISTS t_systemconf (
    configuration hstore NOT NULL
);

-- Users (and their mailbox); `login` is the local part, the mail address is login@domain.
CREATE TABLE IF NOT EXISTS t_directory_entry (
    uid         text PRIMARY KEY,
    domain_uid  text NOT NULL REFERENCES t_domain(name),
    kind        text NOT NULL DEFAULT 'USER',
    login       text NOT NULL,
    display_name text NOT NULL,
    archived    boolean NOT NULL DEFAULT false,
    UNIQUE (domain_uid, login)
);

-- Extra addresses delivered to a user (virtual_alias map).
CREATE TABLE IF NOT EXISTS t_mailbox_alias (
    id          serial PRIMARY KEY,
    domain_uid  text NOT NULL REFERENCES t_domain(name),
    alias       text NOT NULL,             -- local part
    target_uid  text NOT NULL REFERENCES t_directory_entry(uid),
    UNIQUE (domain_uid, alias)
);

-- Roundcube's users (the webmail, bm-webmail), in database bj: one row per user who opened the
-- webmail; mail_host is the IMAP server the webmail connects to (the server's address). A row whose
-- (username, mail_host) does not match makes Roundcube create a new, empty profile.
CREATE TABLE IF NOT EXISTS rc_users (
    user_id     serial PRIMARY KEY,
    username    varchar(128) NOT NULL,
    mail_host   varchar(128) NOT NULL,
    created     timestamp with time zone NOT NULL DEFAULT now(),
    last_login  timestamp with time zone,
    language    varchar(5),
    preferences text,
    UNIQUE (username, mail_host)
);

-- BlueMind's directory keeps the account type as an enum (directory-schema: FULL, SIMPLE,
-- FULL_AND_VISIO; NULL by default). PostgreSQL 13 has no CREATE TYPE IF NOT EXISTS.
DO LANGUAGE plpgsql $$
BEGIN
    IF to_regtype('t_directory_entry_account_type') IS NULL THEN
        CREATE TYPE t_directory_entry_account_type AS ENUM ('FULL', 'SIMPLE', 'FULL_AND_VISIO');
    END IF;
END;
$$;
ALTER TABLE t_directory_entry ADD COLUMN IF NOT EXISTS account_type t_directory_entry_account_type;
