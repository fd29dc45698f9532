/*
 * list.h - intrusive circular doubly linked list (the Linux kernel shape).
 *
 * An all-zero node is "not on a list"; sp_list_del leaves it that way, so a
 * node can be removed twice safely. Single-threaded: the owner of the list.
 */
#ifndef SPOUT_LIST_H
#define SPOUT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct sp_list {
	struct sp_list *prev, *next;
};

#define sp_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static inline void sp_list_init(struct sp_list *head)
{
	head->prev = head->next = head;
}

static inline bool sp_list_empty(const struct sp_list *head)
{
	return head->next == head;
}

static inline bool sp_list_linked(const struct sp_list *node)
{
	return node->next != NULL;
}

static inline void sp_list_del(struct sp_list *node)
{
	if (node->next == NULL)
		return;
	node->prev->next = node->next;
	node->next->prev = node->prev;
	node->prev = node->next = NULL;
}

static inline void sp_list_add_tail(struct sp_list *head, struct sp_list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

static inline void sp_list_add(struct sp_list *head, struct sp_list *node)
{
	node->prev = head;
	node->next = head->next;
	head->next->prev = node;
	head->next = node;
}

/* Move <node> (linked or not) to the tail of <head>. */
static inline void sp_list_move_tail(struct sp_list *head, struct sp_list *node)
{
	sp_list_del(node);
	sp_list_add_tail(head, node);
}

/* Move every node of <from> to the empty list head <to>; <from> is left
 * empty. Lets a loop work through a snapshot while new nodes queue up on
 * <from> for the next round. */
static inline void sp_list_take(struct sp_list *to, struct sp_list *from)
{
	if (sp_list_empty(from)) {
		sp_list_init(to);
		return;
	}
	*to = *from;
	to->next->prev = to;
	to->prev->next = to;
	sp_list_init(from);
}

static inline struct sp_list *sp_list_first(const struct sp_list *head)
{
	/* clang-analyzer cannot follow sp_list_del's unlinking through the
	 * neighbours' pointers, so `while ((it = sp_list_first(l))) {
	 * sp_list_del(it); free(...); }` looks to it like a read of the freed
	 * node. Every such loop unlinks before it frees; the ASan runs in CI
	 * would catch one that did not. */
	return sp_list_empty(head) ? NULL : head->next; // NOLINT(clang-analyzer-unix.Malloc)
}

#endif
