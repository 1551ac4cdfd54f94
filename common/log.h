/* log.h -- levelled logging to stderr; the level is tested before formatting. */
#ifndef COMMON_LOG_H_
#define COMMON_LOG_H_

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, LOG_LEVEL_TRACE };

extern int log_level;  /* default LOG_LEVEL_WARN */

void log_set_prefix(const char *prefix);  /* e.g. "shoal" -> "shoal: warn: ..." */
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_(lvl, ...) do { if ((lvl) <= log_level) log_write((lvl), __VA_ARGS__); } while (0)
#define LOG_ERROR(...) LOG_(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  LOG_(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...)  LOG_(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_TRACE(...) LOG_(LOG_LEVEL_TRACE, __VA_ARGS__)

#endif
