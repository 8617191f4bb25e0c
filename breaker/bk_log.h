/*
 * bk_log - the daemon's diagnostics on stderr (journald adds the rest).
 * Operators read these in an incident: say what happened and what to do.
 */
#ifndef BK_LOG_H
#define BK_LOG_H

enum bk_log_level { BK_LOG_ERR, BK_LOG_WARN, BK_LOG_INFO, BK_LOG_DEBUG };

void bk_log_set_level(enum bk_log_level level);
void bk_log(enum bk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bk_err(...)   bk_log(BK_LOG_ERR, __VA_ARGS__)
#define bk_warn(...)  bk_log(BK_LOG_WARN, __VA_ARGS__)
#define bk_info(...)  bk_log(BK_LOG_INFO, __VA_ARGS__)
#define bk_debug(...) bk_log(BK_LOG_DEBUG, __VA_ARGS__)

#endif
