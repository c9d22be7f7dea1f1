// libssh2 and its SFTP subsystem, as the SFTP module sees them.
// Only Sources/SFTP imports this.
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <string.h>

// Function-like macros Swift does not import, re-exported as inline functions.
static inline LIBSSH2_SESSION *CLibSSH2_session_init(void) {
    return libssh2_session_init_ex(NULL, NULL, NULL, NULL);
}
static inline int CLibSSH2_userauth_publickey_fromfile(LIBSSH2_SESSION *s, const char *user,
                                                       const char *publickey, const char *privatekey,
                                                       const char *passphrase) {
    return libssh2_userauth_publickey_fromfile_ex(s, user, (unsigned int)strlen(user), publickey,
                                                  privatekey, passphrase);
}
static inline int CLibSSH2_userauth_password(LIBSSH2_SESSION *s, const char *user, const char *password) {
    return libssh2_userauth_password_ex(s, user, (unsigned int)strlen(user), password,
                                        (unsigned int)strlen(password), NULL);
}
static inline LIBSSH2_SFTP_HANDLE *CLibSSH2_sftp_open(LIBSSH2_SFTP *sftp, const char *path,
                                                      unsigned long flags, long mode) {
    return libssh2_sftp_open_ex(sftp, path, (unsigned int)strlen(path), flags, mode, LIBSSH2_SFTP_OPENFILE);
}
static inline LIBSSH2_SFTP_HANDLE *CLibSSH2_sftp_opendir(LIBSSH2_SFTP *sftp, const char *path) {
    return libssh2_sftp_open_ex(sftp, path, (unsigned int)strlen(path), 0, 0, LIBSSH2_SFTP_OPENDIR);
}
static inline int CLibSSH2_sftp_stat(LIBSSH2_SFTP *sftp, const char *path, LIBSSH2_SFTP_ATTRIBUTES *attrs) {
    return libssh2_sftp_stat_ex(sftp, path, (unsigned int)strlen(path), LIBSSH2_SFTP_STAT, attrs);
}
static inline int CLibSSH2_sftp_rename(LIBSSH2_SFTP *sftp, const char *from, const char *to) {
    return libssh2_sftp_rename_ex(sftp, from, (unsigned int)strlen(from), to, (unsigned int)strlen(to),
                                  LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
                                      LIBSSH2_SFTP_RENAME_NATIVE);
}
static inline int CLibSSH2_sftp_unlink(LIBSSH2_SFTP *sftp, const char *path) {
    return libssh2_sftp_unlink_ex(sftp, path, (unsigned int)strlen(path));
}
static inline int CLibSSH2_sftp_mkdir(LIBSSH2_SFTP *sftp, const char *path, long mode) {
    return libssh2_sftp_mkdir_ex(sftp, path, (unsigned int)strlen(path), mode);
}
static inline int CLibSSH2_session_disconnect(LIBSSH2_SESSION *s, const char *description) {
    return libssh2_session_disconnect_ex(s, SSH_DISCONNECT_BY_APPLICATION, description, "");
}
