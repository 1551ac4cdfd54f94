/* log.c -- levelled logging to stderr. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

int log_level = LOG_LEVEL_WARN;
static const char *log_prefix = "shoal";

void log_set_prefix(const char *prefix) { log_prefix = prefix; }

void log_write(int level, const char *fmt, ...)
{
  static const char *const names[] = { "error", "warning", "info", "debug", "trace" };
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s: %s\n", log_prefix, names[level < 0 ? 0 : level > 4 ? 4 : level], line);
}
