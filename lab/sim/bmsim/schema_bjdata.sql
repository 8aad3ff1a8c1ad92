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
    internal_date timestamptz NOT NULL DEFAULT now()
);
-- No primary key and no unique index, as BlueMind 4.9 has it (lab/FIDELITY.md, row 26): indexes only.
CREATE INDEX IF NOT EXISTS i_mailbox_record_uid ON t_mailbox_record (mailbox_uid, imap_uid);
CREATE INDEX IF NOT EXISTS t_mailbox_record_body_guid ON t_mailbox_record (message_body_guid);

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

-- ---------------------------------------------------------------------------------------------
-- What BlueMind's own schema has and a move must keep (see lab/FIDELITY.md, row 24). Written here
-- from the facts of bluemindfork's `*/sqlschema/sql/*.sql` (4.9 era 410e30fb0 and 5.x master), in
-- SQL that PostgreSQL 13 accepts (the lab's origin): no CREATE OR REPLACE TRIGGER (14 and later),
-- so each trigger is dropped and made again. The script runs again on every seed: idempotent.
-- The `bmsim_*` functions and triggers are the lab's stand-in for BlueMind's Java code (which writes
-- containers, changelogs and conversation references itself); the others follow BlueMind's.

-- Containers (item-store: serial id, unique uid).
CREATE TABLE IF NOT EXISTS t_container (
    id          serial PRIMARY KEY,
    uid         text NOT NULL UNIQUE,
    container_type varchar(50) NOT NULL,
    owner       text NOT NULL
);

-- Access control list: no primary key and no unique index in BlueMind either.
CREATE TABLE IF NOT EXISTS t_container_acl (
    container_id int4 REFERENCES t_container(id),
    subject     text NOT NULL,
    verb        text NOT NULL,
    position    int2 NOT NULL
);

-- Item flags as BlueMind's t_container_item has them (1: seen, 2: deleted) and its container id.
ALTER TABLE t_container_item ADD COLUMN IF NOT EXISTS flags int4 NOT NULL DEFAULT 0;
ALTER TABLE t_container_item ADD COLUMN IF NOT EXISTS container_id int4;

-- Change log of every container (key: version, container, item uid).
CREATE TABLE IF NOT EXISTS t_container_changelog (
    version     int4 NOT NULL,
    container_id int4 NOT NULL,
    item_uid    text NOT NULL,
    type        smallint NOT NULL,         -- 0 created, 1 updated, 2 deleted
    date        timestamp NOT NULL,
    item_id     bigint NOT NULL,
    PRIMARY KEY (version, container_id, item_uid)
);
-- BlueMind's two indexes of the log (item-store-1.0.0-SNAPSHOT.sql): the change-set trigger below
-- looks the log up by container and item, which the key (version first) cannot serve.
CREATE INDEX IF NOT EXISTS tcc_container_id_fkey ON t_container_changelog (container_id);
CREATE INDEX IF NOT EXISTS t_container_changelog_container_id_item_id_version_idx
    ON t_container_changelog (container_id, item_id, version);

-- Change set: the first and the last change of each item, kept by a trigger on the change log.
-- Made LIKE the change log (so without its primary key), hash-partitioned on the container id;
-- BlueMind makes bm.changeset_partitions partitions, 256 when the setting is absent.
CREATE TABLE IF NOT EXISTS t_container_changeset (LIKE t_container_changelog) PARTITION BY HASH (container_id);
CREATE UNIQUE INDEX IF NOT EXISTS t_container_changeset_item_version ON t_container_changeset (item_id, version, container_id);
DO LANGUAGE plpgsql $$
DECLARE
    n integer := COALESCE(current_setting('bm.changeset_partitions', true)::integer, 256);
BEGIN
    FOR r IN 0..n - 1 LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF t_container_changeset '
                       'FOR VALUES WITH (MODULUS %s, REMAINDER %s)', 't_container_changeset_' || r, n, r);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION changeset_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM t_container_changeset WHERE item_id = NEW.item_id AND container_id = NEW.container_id;
    INSERT INTO t_container_changeset (version, container_id, item_uid, type, date, item_id)
        (SELECT version, container_id, item_uid, type, date, item_id FROM t_container_changelog
          WHERE item_id = NEW.item_id AND container_id = NEW.container_id ORDER BY version DESC LIMIT 1)
        UNION
        (SELECT version, container_id, item_uid, type, date, item_id FROM t_container_changelog
          WHERE item_id = NEW.item_id AND container_id = NEW.container_id ORDER BY version LIMIT 1);
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS changelog_insert ON t_container_changelog;
CREATE TRIGGER changelog_insert AFTER INSERT ON t_container_changelog
    FOR EACH ROW EXECUTE PROCEDURE changeset_insert();

-- Item counters per container (BlueMind 5.x, "fastcount", 2023): rows made by a trigger on
-- t_container, kept by triggers on t_container_item.
CREATE TABLE IF NOT EXISTS v_container_item_counter (
    container_id integer PRIMARY KEY REFERENCES t_container(id) ON DELETE CASCADE,
    unseen_total bigint,
    unseen_visible bigint,
    total_visible bigint,
    total bigint
) WITH (fillfactor = 60);

CREATE OR REPLACE FUNCTION fct_container_item_counter_container_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO v_container_item_counter (container_id, unseen_total, unseen_visible, total_visible, total)
        VALUES (NEW.id, 0, 0, 0, 0) ON CONFLICT (container_id) DO NOTHING;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS trigger_container_item_counter_container_created ON t_container;
CREATE TRIGGER trigger_container_item_counter_container_created AFTER INSERT ON t_container
    FOR EACH ROW EXECUTE PROCEDURE fct_container_item_counter_container_created();

-- +1 / -1 of an item's flags in each counter (seen: 1, deleted: 2).
CREATE OR REPLACE FUNCTION bmsim_counter_add(cid integer, item_flags integer, sign integer, whole boolean)
RETURNS void LANGUAGE sql AS $$
    UPDATE v_container_item_counter SET
        unseen_total = unseen_total + CASE WHEN item_flags & 1 = 0 THEN sign ELSE 0 END,
        unseen_visible = unseen_visible + CASE WHEN item_flags & 3 = 0 THEN sign ELSE 0 END,
        total_visible = total_visible + CASE WHEN item_flags & 2 = 0 THEN sign ELSE 0 END,
        total = total + CASE WHEN whole THEN sign ELSE 0 END
    WHERE container_id = cid;
$$;
CREATE OR REPLACE FUNCTION fct_container_item_counter_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bmsim_counter_add(NEW.container_id, NEW.flags, 1, true);
    RETURN NEW;
END;
$$;
CREATE OR REPLACE FUNCTION fct_container_item_counter_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bmsim_counter_add(OLD.container_id, OLD.flags, -1, false);
    PERFORM bmsim_counter_add(NEW.container_id, NEW.flags, 1, false);
    RETURN NEW;
END;
$$;
CREATE OR REPLACE FUNCTION fct_container_item_counter_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bmsim_counter_add(OLD.container_id, OLD.flags, -1, true);
    RETURN OLD;
END;
$$;
CREATE OR REPLACE FUNCTION fct_container_item_counter_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE v_container_item_counter;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS trigger_container_item_count_insert ON t_container_item;
CREATE TRIGGER trigger_container_item_count_insert AFTER INSERT ON t_container_item
    FOR EACH ROW EXECUTE PROCEDURE fct_container_item_counter_inserted();
DROP TRIGGER IF EXISTS trigger_container_item_count_updater ON t_container_item;
CREATE TRIGGER trigger_container_item_count_updater AFTER UPDATE ON t_container_item
    FOR EACH ROW WHEN (OLD.flags & 1 IS DISTINCT FROM NEW.flags & 1 OR OLD.flags & 2 IS DISTINCT FROM NEW.flags & 2)
    EXECUTE PROCEDURE fct_container_item_counter_updated();
DROP TRIGGER IF EXISTS trigger_container_item_counter_deleted ON t_container_item;
CREATE TRIGGER trigger_container_item_counter_deleted AFTER DELETE ON t_container_item
    FOR EACH ROW EXECUTE PROCEDURE fct_container_item_counter_deleted();
DROP TRIGGER IF EXISTS trigger_container_item_counter_truncate ON t_container_item;
CREATE TRIGGER trigger_container_item_counter_truncate AFTER TRUNCATE ON t_container_item
    FOR EACH STATEMENT EXECUTE PROCEDURE fct_container_item_counter_truncated();

-- Conversation references (BlueMind 5.x): an identity column (GENERATED ALWAYS), hash-partitioned
-- on the mailbox, bm.conversationreference_partitions partitions (25 when absent).
CREATE TABLE IF NOT EXISTS t_conversationreference (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    message_id_hash bigint NOT NULL,
    mailbox_id  bigint NOT NULL,
    conversation_id bigint NOT NULL,
    expires     timestamp DEFAULT now() + '1 year'::interval,
    UNIQUE (mailbox_id, message_id_hash)
) PARTITION BY HASH (mailbox_id);
DO LANGUAGE plpgsql $$
DECLARE
    n integer := COALESCE(current_setting('bm.conversationreference_partitions', true)::integer, 25);
BEGIN
    FOR r IN 0..n - 1 LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF t_conversationreference '
                       'FOR VALUES WITH (MODULUS %s, REMAINDER %s)', 't_conversationreference_' || r, n, r);
    END LOOP;
END;
$$;

-- The lab's stand-in for the core: the container of a uid, made on first use (type from its prefix).
CREATE OR REPLACE FUNCTION bmsim_container(container_uid text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    cid integer;
BEGIN
    SELECT id INTO cid FROM t_container WHERE uid = container_uid;
    IF cid IS NULL THEN
        INSERT INTO t_container (uid, container_type, owner)
            VALUES (container_uid, split_part(split_part(container_uid, ':', 1), '_', 1),
                    regexp_replace(container_uid, '^.*[:_]', ''))
            ON CONFLICT (uid) DO NOTHING;
        SELECT id INTO cid FROM t_container WHERE uid = container_uid;
        INSERT INTO t_container_acl (container_id, subject, verb, position)
            VALUES (cid, regexp_replace(container_uid, '^.*[:_]', ''), 'All', 0), (cid, 'admin0', 'Read', 1);
    END IF;
    RETURN cid;
END;
$$;
-- an item gets its container id before the counter triggers run
CREATE OR REPLACE FUNCTION bmsim_item_container() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.container_id := bmsim_container(NEW.container_uid);
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS bmsim_item_container ON t_container_item;
CREATE TRIGGER bmsim_item_container BEFORE INSERT ON t_container_item
    FOR EACH ROW EXECUTE PROCEDURE bmsim_item_container();
-- every change the simulator records (t_changeset) goes to BlueMind's change log too
CREATE OR REPLACE FUNCTION bmsim_changelog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t_container_changelog (version, container_id, item_uid, type, date, item_id)
        VALUES (NEW.version, bmsim_container(NEW.container_uid), NEW.item_uid, NEW.type,
                NEW.date AT TIME ZONE 'UTC', ('x' || substr(md5(NEW.item_uid), 1, 15))::bit(60)::bigint)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS bmsim_changelog ON t_changeset;
CREATE TRIGGER bmsim_changelog AFTER INSERT ON t_changeset
    FOR EACH ROW EXECUTE PROCEDURE bmsim_changelog();
-- a delivered message is referenced in its conversation (the identity column takes the next id)
CREATE OR REPLACE FUNCTION bmsim_conversationreference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t_conversationreference (message_id_hash, mailbox_id, conversation_id)
        VALUES (('x' || substr(NEW.message_body_guid, 1, 15))::bit(60)::bigint,
                bmsim_container('mbox_records_' || NEW.mailbox_uid),
                ('x' || substr(md5(NEW.message_body_guid), 1, 15))::bit(60)::bigint)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS bmsim_conversationreference ON t_mailbox_record;
CREATE TRIGGER bmsim_conversationreference AFTER INSERT ON t_mailbox_record
    FOR EACH ROW EXECUTE PROCEDURE bmsim_conversationreference();
