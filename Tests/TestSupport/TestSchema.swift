/// A small multi-tenant application schema for retention tests: conversations → messages
/// → attachments, blobs, versioned documents, keep-only staff; accounts are bigint.
public enum TestSchema {
    public static let sql = """
        CREATE SCHEMA app;
        CREATE TABLE app.blobs (id bigint PRIMARY KEY, account_id bigint NOT NULL,
                                created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE app.conv (id bigint PRIMARY KEY, account_id bigint NOT NULL, ended_at timestamptz,
                               status text NOT NULL DEFAULT 'closed', rec bigint REFERENCES app.blobs);
        CREATE INDEX ON app.conv (account_id, ended_at);
        CREATE INDEX ON app.conv (rec);
        CREATE TABLE app.msg (id bigint PRIMARY KEY, conv_id bigint NOT NULL REFERENCES app.conv);
        CREATE INDEX ON app.msg (conv_id);
        CREATE TABLE app.att (id bigint PRIMARY KEY, msg_id bigint NOT NULL REFERENCES app.msg,
                              blob_id bigint NOT NULL REFERENCES app.blobs);
        CREATE INDEX ON app.att (msg_id);
        CREATE INDEX ON app.att (blob_id);
        CREATE TABLE app.docs (id bigint PRIMARY KEY, account_id bigint NOT NULL, item bigint NOT NULL,
                               saved_at timestamptz NOT NULL);
        CREATE TABLE app.staff (id bigint PRIMARY KEY, account_id bigint NOT NULL, updated_at timestamptz NOT NULL);
        """
}
