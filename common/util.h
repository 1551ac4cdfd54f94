/* util.h -- small macros used everywhere. */
#ifndef COMMON_UTIL_H_
#define COMMON_UTIL_H_

#include <stddef.h>

/* The struct that embeds `ptr` as its `member`. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#include <sys/param.h> /* MIN, MAX */

/* Intrusive doubly linked lists: any struct with `next` and `prev` pointers,
 * a head pointer.  Push at the head; remove in O(1) (node must be in head's list). */
#define DLIST_PUSH(head, node)                 \
  do {                                         \
    (node)->prev = NULL;                       \
    (node)->next = (head);                     \
    if (head)                                  \
      (head)->prev = (node);                   \
    (head) = (node);                           \
  } while (0)
#define DLIST_REMOVE(head, node)               \
  do {                                         \
    if ((node)->prev)                          \
      (node)->prev->next = (node)->next;       \
    else                                       \
      (head) = (node)->next;                   \
    if ((node)->next)                          \
      (node)->next->prev = (node)->prev;       \
    (node)->prev = (node)->next = NULL;        \
  } while (0)

#endif
