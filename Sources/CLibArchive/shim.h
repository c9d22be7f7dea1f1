// libarchive, as the Archive module sees it. Only Sources/Archive imports this.
#include <archive.h>
#include <archive_entry.h>

// AE_IFREG is an octal macro Swift does not import.
static const unsigned int CLibArchive_AE_IFREG = 0100000;

// archive_set_error is variadic, which Swift cannot call: the write callback reports
// errors through this fixed-format wrapper.
static inline void CLibArchive_set_error(struct archive *a, int code, const char *message) {
    archive_set_error(a, code, "%s", message);
}
