-- Simulated BlueMind `bj-data` database (mail metadata and container items).
CREATE TABLE IF NOT EXISTS t_message_body (
    guid        text PRIMARY KEY,          -- sha1 of the message file, as Cyrus' GUID
    size        integer NOT NULL,
    subject     text,
    structure   text,                      -- body structure (json text); makes the database big
    created     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS t_mailbox_record (
    mailbox_uid text NOT NULL,             -- t_directory_entry.uid of bj
    imap_uid    integer NOT NULL,
    message_body_guid text NOT NULL REFERENCES t_message_body(guid),
    system_flags integer NOT NULL DEFAULT 0,
    internal_date timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_uid, imap_uid)
);

CREATE TABLE IF NOT EXISTS t_container_item (
    id          bigserial PRIMARY KEY,
    container_uid text NOT NULL,
    uid         text NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    value       text,
    UNIQUE (container_uid, uid)
);

CREATE TABLE IF NOT EXISTS t_changeset (
    id          bigserial PRIMARY KEY,
    container_uid text NOT NULL,
    item_uid    text NOT NULL,
    version     bigint NOT NULL,
    type        smallint NOT NULL,         -- 0 created, 1 updated, 2 deleted
    date        timestamptz NOT NULL DEFAULT now()
);

-- Lookups of the simulator: next changeset version of a container, mailboxes keeping a message.
CREATE INDEX IF NOT EXISTS t_changeset_container_version ON t_changeset (container_uid, version);
CREATE INDEX IF NOT EXISTS t_mailbox_record_body ON t_mailbox_record (message_body_guid);
