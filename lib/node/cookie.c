// SPDX-License-Identifier: MIT
/*
 * The cookie file: the secret every node of one mesh shares. Only a hash
 * of it leaves this file (the master key the handshake derives from).
 */
#include "handshake.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COOKIE_MIN 16u
#define COOKIE_MAX 4096u
#define COOKIE_RANDOM 32u /* bytes of a new cookie, before hex */
/* The master key is this hash and nothing else's: a cookie reused by some
 * other program as a key does not give the same bytes there. */
#define COOKIE_DOMAIN "pgroup cookie v1"

static int put_path(char *out, size_t cap, const char *dir, const char *rest)
{
	int n = snprintf(out, cap, "%s%s", dir, rest);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int hs_cookie_default_path(char *out, size_t cap)
{
	/* The effective user: the file must be owned by it to be loaded. */
	uid_t uid = geteuid();
	if (uid == 0)
		return put_path(out, cap, "/var/lib/pgroup/cookie", "");
	/* XDG: a relative XDG_CONFIG_HOME is invalid and must be ignored. */
	const char *xdg = getenv("XDG_CONFIG_HOME");
	if (xdg && xdg[0] == '/')
		return put_path(out, cap, xdg, "/pgroup/cookie");
	const char *home = getenv("HOME");
	if (home && home[0] == '/')
		return put_path(out, cap, home, "/.config/pgroup/cookie");
	struct passwd pw, *res = NULL;
	char buf[1024];
	int err = getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
	if (err)
		return -err;
	if (!res || !pw.pw_dir || pw.pw_dir[0] != '/')
		return -ENOENT;
	return put_path(out, cap, pw.pw_dir, "/.config/pgroup/cookie");
}

/* mkdir -p of path's directory; the ones made are private (0700), those
 * already there are left as they are. */
static int make_parents(const char *path)
{
	char dir[PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, len + 1);
	for (size_t i = 1; i < len; i++) {
		if (dir[i] != '/')
			continue;
		dir[i] = 0;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		dir[i] = '/';
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * A new cookie. Written whole to a private temporary file (O_EXCL, 0600)
 * and only then linked to its name: daemons of one user starting at once
 * never read a half-written cookie, and when two create it, the first link
 * wins and both load that one.
 */
static int create_cookie(const char *path)
{
	int err = make_parents(path);
	if (err)
		return err;
	char tmp[PATH_MAX];
	err = put_path(tmp, sizeof(tmp), path, ".XXXXXX");
	if (err)
		return err;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;

	uint8_t raw[COOKIE_RANDOM];
	char hex[2 * COOKIE_RANDOM + 1];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	/* The hex's NUL becomes the newline: 64 characters and '\n'. */
	hex[2 * COOKIE_RANDOM] = '\n';
	err = write_all(fd, hex, sizeof(hex));
	if (!err && fsync(fd) < 0)
		err = -errno;
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && link(tmp, path) < 0 && errno != EEXIST)
		err = -errno;
	unlink(tmp);
	return err;
}

/* Read the cookie, refusing a file anyone but its owner could read or
 * replace. ENOENT is passed up as is: the caller creates the file. */
static int read_cookie(const char *path, uint8_t master[HS_KEY_BYTES])
{
	/* O_NOFOLLOW: a symlink could point the check at a file we do not
	 * mean; O_NONBLOCK: a FIFO planted at path must not hang us (it is
	 * refused below). The checks are on the open file (fstat), so the
	 * name cannot be swapped between check and read. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)))
		err = -EPERM;
	if (err) {
		close(fd);
		return err;
	}

	/* Room for one byte too many (after the newline): that is how a file
	 * that is too long is seen without reading all of it. */
	uint8_t buf[COOKIE_MAX + 2];
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!err) {
		if (n && buf[n - 1] == '\n')
			n--;
		if (n < COOKIE_MIN || n > COOKIE_MAX)
			err = -EINVAL;
	}
	if (!err) {
		crypto_generichash_state st_h;
		crypto_generichash_init(&st_h, NULL, 0, HS_KEY_BYTES);
		crypto_generichash_update(&st_h, (const uint8_t *)COOKIE_DOMAIN,
					  strlen(COOKIE_DOMAIN));
		crypto_generichash_update(&st_h, buf, n);
		crypto_generichash_final(&st_h, master, HS_KEY_BYTES);
		sodium_memzero(&st_h, sizeof(st_h));
	}
	sodium_memzero(buf, sizeof(buf));
	return err;
}

int hs_cookie_load(const char *path, uint8_t master[HS_KEY_BYTES])
{
	/* randombytes_buf and the hash want libsodium started; it is
	 * idempotent and thread-safe, so each entry point asks for it. */
	if (sodium_init() < 0)
		return -EIO;
	if (!path || !*path)
		return -EINVAL;
	int err = read_cookie(path, master);
	if (err != -ENOENT)
		return err;
	err = create_cookie(path);
	if (err)
		return err;
	return read_cookie(path, master);
}
