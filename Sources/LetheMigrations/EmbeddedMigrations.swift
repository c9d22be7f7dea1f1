/// The SQL of `migrations/*.sql`, compiled into the binary so that `lethe migrate` needs no
/// file on disk. `files` is generated at build time by the `EmbedMigrations` plugin (see
/// `Plugins/EmbedMigrations`); Store turns it into `MigrationFile`s.
public enum EmbeddedMigrations {}
