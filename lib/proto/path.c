// SPDX-License-Identifier: MIT
#include "path.h"

#include "timing.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_connect_wait(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* Non-blocking: a listener that does not accept (stopped, or out of
	 * fds) fills its backlog, and a blocking connect would then wait for
	 * ever. Retry for at most timeout_ms, then say the socket is busy. */
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (int waited = 0;; waited += 5) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		int err = -errno;
		if (err != -EAGAIN || waited >= timeout_ms) {
			close(fd);
			return err == -EAGAIN ? -ETIMEDOUT : err;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ctl_connect(const char *path)
{
	return ctl_connect_wait(path, PG_RPC_TIMEOUT_MS);
}

static bool someone_listens(const char *path)
{
	int fd = ctl_connect_wait(path, 0);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static int put(char *out, size_t cap, const char *fmt, const char *a, unsigned u)
{
	int n = a ? snprintf(out, cap, fmt, a) : snprintf(out, cap, fmt, u);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ctl_default_socket(char *out, size_t cap)
{
	const char *env = getenv("PGROUP_SOCKET");
	if (env && *env)
		return put(out, cap, "%s", env, 0);
	if (someone_listens(CTL_SYSTEM_SOCKET))
		return put(out, cap, "%s", CTL_SYSTEM_SOCKET, 0);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg)
		return put(out, cap, "%s/pgroup/pgroupd.sock", xdg, 0);
	return put(out, cap, "/tmp/pgroup-%u/pgroupd.sock", NULL, (unsigned)getuid());
}
