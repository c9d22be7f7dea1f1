// libpq, as the Postgres module sees it. Only Sources/Postgres imports this.
#include <libpq-fe.h>

// PG_DIAG_* are macros over character literals that Swift does not import.
static const int CLibPQ_DIAG_SEVERITY = 'S';
static const int CLibPQ_DIAG_SQLSTATE = 'C';
static const int CLibPQ_DIAG_MESSAGE_PRIMARY = 'M';
static const int CLibPQ_DIAG_MESSAGE_DETAIL = 'D';
static const int CLibPQ_DIAG_MESSAGE_HINT = 'H';
static const int CLibPQ_DIAG_CONSTRAINT_NAME = 'n';
static const int CLibPQ_DIAG_TABLE_NAME = 't';
static const int CLibPQ_DIAG_COLUMN_NAME = 'c';
static const int CLibPQ_DIAG_SCHEMA_NAME = 's';
