-- BlueMind 5.x additions to the simulator's bj (applied after schema_bj.sql on a 5.x host only, so the
-- 4.x lab's schema stays as it was).
-- t_domain.properties: bluemindfork parent/domain/net.bluemind.domain.sqlschema/sql/domain-schema.1.0.0.sql
-- (an hstore); 5.x keeps the Keycloak client secret there as OPENID_CLIENT_SECRET (KeycloakHelper).
ALTER TABLE t_domain ADD COLUMN IF NOT EXISTS properties hstore;
-- Users' passwords: bluemindfork parent/user/net.bluemind.user.sqlschema/sql/user-schema.1.0.0.sql has
-- t_domain_user.password and password_algorithm (there keyed by the item id; here by the entry's uid).
-- The hash format is the lab's (salt$pbkdf2-sha256), unconfirmed.
CREATE TABLE IF NOT EXISTS t_domain_user (
    uid                text PRIMARY KEY REFERENCES t_directory_entry(uid) ON DELETE CASCADE,
    password           varchar(255),
    password_algorithm varchar(64)
);
