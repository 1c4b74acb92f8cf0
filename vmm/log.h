/* One logging style for all of kvmini: every message is one line on stderr,
 * prefixed "kvmini: ", so a user sees a single clear line per problem. */
#ifndef KVMINI_LOG_H
#define KVMINI_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Process exit statuses of the CLI contract (../shared/cli.md). */
enum {
	EXIT_GUEST_OK = 0,   /* guest powered off (or rebooted under --no-reboot) */
	EXIT_FAILURE_VM = 1, /* guest crash, VMM error, failed device */
	EXIT_USAGE = 2,      /* bad usage or bad input file */
};

#endif
