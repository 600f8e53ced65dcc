/* Tries to fork N children that wait forever, and reports how many forks
 * the kernel refused:  forkbomb N  ->  "forked X, refused Y"
 * The children are left behind for the caller to clean up. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc == 2 ? atoi(argv[1]) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: forkbomb N\n");
		return 2;
	}
	int forked = 0, refused = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid > 0)
			forked++;
		else if (errno == EAGAIN)
			refused++;
		else {
			perror("fork");
			return 1;
		}
	}
	printf("forked %d, refused %d\n", forked, refused);
	return 0;
}
