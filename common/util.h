/* util.h -- small macros used everywhere. */
#ifndef COMMON_UTIL_H_
#define COMMON_UTIL_H_

#include <stddef.h>

/* The struct that embeds `ptr` as its `member`. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#include <sys/param.h> /* MIN, MAX */

#endif
