// libarchive, as the Archive module sees it. Only Sources/Archive imports this.
#include <archive.h>
#include <archive_entry.h>

// AE_IFREG is an octal macro Swift does not import.
static const unsigned int CLibArchive_AE_IFREG = 0100000;
