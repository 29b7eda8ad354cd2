// SPDX-License-Identifier: MIT
/* pg_strerror: what a negative return means, in the contract's words. */
#include <errno.h>
#include <string.h>

#include "pgroup.h"

const char *pg_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EEXIST:
		return "group exists";
	case -ENOENT:
		return "no such group (or no daemon on that socket)";
	case -EINVAL:
		return "invalid name or argument";
	case -EMSGSIZE:
		return "message larger than the group allows";
	case -EALREADY:
		return "already a member";
	case -ESRCH:
		return "not a member, or no handle open for that pid";
	case -EACCES:
		return "permission denied by the group's mode";
	case -EPERM:
		return "not allowed to act for that process";
	case -EHOSTUNREACH:
		return "node not connected";
	case -EREMOTE:
		return "the group's master is another node (remote members and senders are not built yet)";
	case -ECANCELED:
		return "claim cancelled by the node";
	case -ECHILD:
		return "handle belongs to the parent process";
	case -ENOTCONN:
		return "node daemon is gone";
	case -ECONNREFUSED:
		return "no daemon listens on the socket";
	case -EAGAIN:
		return "nothing there / ring full";
	case -ETIMEDOUT:
		return "timed out (from a request: the node daemon did not answer)";
	case -EDEADLK:
		return "ring full of messages this handle has not received: call pg_recv, then send again";
	case -EMFILE:
		return "node daemon is out of file descriptors";
	case -EDQUOT:
		return "over your limit on this node (groups, ring memory, handles or memberships)";
	case -ENOSPC:
		return "the node is full (its ring memory, or the group's member slots)";
	case -EUSERS:
		return "too many senders in this group";
	case -EINTR:
		return "interrupted by a signal";
	case -EBADMSG:
		return "the group's shared memory is corrupt";
	case -EPROTO:
		return "protocol error";
	case -ENOBUFS:
		return "group full: no room for the membership event (a member is not reading)";
	case -EBUSY:
		return "a claim is already open on this group";
	default:
		return err < 0 ? strerror(-err) : "unknown";
	}
}
