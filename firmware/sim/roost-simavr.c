/*
 * roost-simavr: an ATmega328P (an Arduino Uno's chip) simulated by libsimavr, its UART0 on a pty.
 *
 *   roost-simavr [--freq HZ] [--bootloader BOOT.hex] [--auto-reset] [FIRMWARE.hex]
 *
 * Prints "pty: /dev/pts/N" first on stdout, then events, one a line: "pin D13 1" when an output
 * pin changes, "reset external" / "reset watchdog". Reads commands on stdin, one a line:
 * "adc CH MILLIVOLTS" (CH 0-7 or "temp"), "pin D2 1" (drive an input), "reset", "quit".
 *
 * The simulation is paced to the wall clock (one simulated second takes one second), so the
 * UART's bytes come and go at the configured baud rate, timeouts and watchdogs last what they
 * last on the chip. Received bytes are handed to the UART only when its receiver is enabled and
 * its FIFO has room (the XOFF irq), so nothing written to the pty is lost; bytes the chip sends
 * while no program has the pty open are dropped, as on a cable nobody listens to.
 *
 * --bootloader loads a boot image (optiboot: 512 bytes at 0x7E00) and starts there at every
 * reset (the BOOTRST fuse). --auto-reset is the Uno's DTR circuit: opening the pty resets the
 * chip (EXTRF in MCUSR), which is what lets avrdude talk to the bootloader. Opens are seen
 * through inotify on the slave (a close and a quick reopen too), else by POLLHUP on the master.
 *
 * The end of stdin ends the simulation when stdin is a pipe (the parent is gone); from a file or
 * /dev/null it runs until SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <sim_hex.h>
#include <avr_adc.h>
#include <avr_ioport.h>
#include <avr_uart.h>

/* ATmega328P data-space addresses and bits (datasheet, register summary). */
#define MCUSR_ADDR 0x54
#define PORF_BIT 0
#define EXTRF_BIT 1
#define UCSR0A_ADDR 0xC0
#define UCSR0B_ADDR 0xC1
#define UCSR0C_ADDR 0xC2
#define UBRR0L_ADDR 0xC4
#define UBRR0H_ADDR 0xC5
#define RXEN0_BIT 4
#define U2X0_BIT 1
#define FLASH_SIZE 0x8000u

#define SLICE_NS 1000000ull /* I/O is served at least once per simulated millisecond */
#define MAX_LAG_NS 50000000ull /* behind the wall clock by more: the host stalled us; no catching up */
#define RX_CHUNK 256
#define TX_MAX (1u << 20) /* bytes kept for a pty reader that is slow, at most */

static const char PORT_NAMES[3] = {'B', 'C', 'D'};
/* Data-space addresses of DDRB, DDRC, DDRD. */
static const uint16_t DDR_ADDR[3] = {0x24, 0x27, 0x2A};

static struct {
	avr_t *avr;
	uint32_t freq;
	int master;
	bool slave_open;
	bool auto_reset;
	int opens_fd;            /* inotify on the slave: every open and close of it, however quick */
	bool last_was_close;
	avr_run_t plain_run;
	uint64_t cycles; /* simulated cycles since start, across resets */
	/* pty -> UART */
	uint8_t rx[RX_CHUNK];
	size_t rx_len, rx_pos;
	bool rx_xoff;
	avr_irq_t *uart_in;
	avr_uart_t *uart;
	/* UART -> pty */
	uint8_t *tx;
	size_t tx_len;
	unsigned long tx_dropped;
	/* pins */
	int last_out[3][8];
	uint8_t ext_mask[3], ext_value[3];
	bool driving;
	/* stdin */
	char line[256];
	size_t line_len;
	bool stdin_open;
	bool stdin_is_pipe;
	bool events_pending;
} S;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("roost-simavr: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("roost-simavr: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* simavr's own messages go to stderr: stdout carries only the pty line and events. */
static void sim_logger(avr_t *avr, const int level, const char *format, va_list ap)
{
	if (avr != NULL && level > avr->log)
		return;
	vfprintf(stderr, format, ap);
}

static void event(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	S.events_pending = true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cycles_to_ns(uint64_t cycles)
{
	return (uint64_t)((long double)cycles * 1e9L / S.freq);
}

static uint64_t ns_to_cycles(uint64_t ns)
{
	return (uint64_t)((long double)ns * S.freq / 1e9L);
}

/* ---- loading Intel HEX images into flash ---------------------------------------------------- */

/* Loads every record of `path` into flash; refuses bytes past the end of flash or written twice. */
static void load_hex(const char *path, uint8_t *written, uint32_t *lowest)
{
	ihex_chunk_p chunks = NULL;
	int count = read_ihex_chunks(path, &chunks);
	if (count < 0)
		die("%s: not a readable Intel HEX file", path);
	if (count == 0)
		die("%s: holds no data", path);
	*lowest = UINT32_MAX;
	for (int i = 0; i < count; i++) {
		uint32_t base = chunks[i].baseaddr, size = chunks[i].size;
		if ((uint64_t)base + size > FLASH_SIZE)
			die("%s: bytes at 0x%04X-0x%04X lie past the end of the ATmega328P's 32 KB flash "
			    "(an image that does not fit cannot work on the chip either)",
			    path, base > FLASH_SIZE ? base : FLASH_SIZE, base + size - 1);
		for (uint32_t a = base; a < base + size; a++) {
			if (written[a])
				die("%s: byte 0x%04X is written twice (overlapping images or sections)", path, a);
			written[a] = 1;
		}
		memcpy(S.avr->flash + base, chunks[i].data, size);
		if (base < *lowest)
			*lowest = base;
	}
	free_ihex_chunks(chunks);
}

/* ---- pins --------------------------------------------------------------------------------------- */

/* The Uno's name of port `port` (0 B, 1 C, 2 D) bit `bit`: D0-D13, A0-A5, else PB6 ... */
static void pin_name(int port, int bit, char *out, size_t len)
{
	if (port == 2)
		snprintf(out, len, "D%d", bit);
	else if (port == 0 && bit <= 5)
		snprintf(out, len, "D%d", 8 + bit);
	else if (port == 1 && bit <= 5)
		snprintf(out, len, "A%d", bit);
	else
		snprintf(out, len, "P%c%d", PORT_NAMES[port], bit);
}

/* Parses D0-D19, A0-A5 or PB0-PD7; returns false when it names no pin. */
static bool parse_pin(const char *name, int *port, int *bit)
{
	char *end;
	long n;
	if ((name[0] == 'P' || name[0] == 'p') && name[1] != '\0' && name[2] >= '0' && name[2] <= '7' && name[3] == '\0') {
		const char *p = strchr("BCD", name[1] & ~0x20);
		if (p == NULL)
			return false;
		*port = (int)(p - "BCD");
		*bit = name[2] - '0';
		return true;
	}
	if (name[0] != 'D' && name[0] != 'd' && name[0] != 'A' && name[0] != 'a')
		return false;
	n = strtol(name + 1, &end, 10);
	if (end == name + 1 || *end != '\0')
		return false;
	if (name[0] == 'A' || name[0] == 'a')
		n += 14;
	if (n >= 0 && n <= 7) {
		*port = 2;
		*bit = (int)n;
	} else if (n >= 8 && n <= 13) {
		*port = 0;
		*bit = (int)n - 8;
	} else if (n >= 14 && n <= 19) {
		*port = 1;
		*bit = (int)n - 14;
	} else {
		return false;
	}
	return true;
}

static void pin_changed(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	int port = (int)(intptr_t)param / 8, bit = (int)(intptr_t)param % 8;
	char name[8];
	if (S.driving || !(S.avr->data[DDR_ADDR[port]] & (1u << bit)))
		return; /* an input: not the chip's doing */
	int v = value ? 1 : 0;
	if (S.last_out[port][bit] == v)
		return;
	S.last_out[port][bit] = v;
	pin_name(port, bit, name, sizeof name);
	event("pin %s %d", name, v);
}

static void drive_pin(int port, int bit, int value)
{
	avr_ioport_external_t ext = {.name = (unsigned long)PORT_NAMES[port]};
	S.ext_mask[port] |= (uint8_t)(1u << bit);
	if (value)
		S.ext_value[port] |= (uint8_t)(1u << bit);
	else
		S.ext_value[port] &= (uint8_t)~(1u << bit);
	ext.mask = S.ext_mask[port];
	ext.value = S.ext_value[port];
	avr_ioctl(S.avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(PORT_NAMES[port]), &ext);
	S.driving = true;
	avr_raise_irq(avr_io_getirq(S.avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_NAMES[port]), bit), (uint32_t)value);
	S.driving = false;
}

static void forget_outputs(void)
{
	for (int p = 0; p < 3; p++)
		for (int b = 0; b < 8; b++)
			S.last_out[p][b] = -1;
}

/* ---- UART <-> pty -------------------------------------------------------------------------------- */

static void uart_output(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)param;
	if (!S.slave_open)
		return; /* nobody listens: the bytes are gone, as on a real line */
	if (S.tx_len >= TX_MAX) {
		S.tx_dropped++;
		return;
	}
	S.tx[S.tx_len++] = (uint8_t)value;
}

static void uart_xoff(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)param;
	S.rx_xoff = value != 0;
}

static bool uart_can_take(void)
{
	return (S.avr->data[UCSR0B_ADDR] & (1u << RXEN0_BIT)) && !S.rx_xoff;
}

static void feed_uart(void)
{
	while (S.rx_pos < S.rx_len && uart_can_take())
		avr_raise_irq(S.uart_in, S.rx[S.rx_pos++]);
}

static void flush_tx(void)
{
	if (S.tx_len == 0)
		return;
	if (!S.slave_open) {
		S.tx_len = 0;
		return;
	}
	ssize_t n = write(S.master, S.tx, S.tx_len);
	if (n > 0) {
		memmove(S.tx, S.tx + n, S.tx_len - (size_t)n);
		S.tx_len -= (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EIO) {
		warn("writing to the pty failed: %s", strerror(errno));
	}
}

/*
 * libsimavr 1.6 works out a byte's duration only when UBRR is written, and counts a parity bit
 * that 8N1 does not have: a program that sets U2X after UBRR (as avr-libc's setbaud.h does) would
 * get half its baud rate. Recomputed here from every register that matters, after each write.
 */
static void uart_timing(struct avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param)
{
	(void)addr;
	(void)v;
	(void)param;
	static const int data_bits[8] = {5, 6, 7, 8, 8, 8, 8, 9};
	uint8_t a = avr->data[UCSR0A_ADDR], b = avr->data[UCSR0B_ADDR], c = avr->data[UCSR0C_ADDR];
	uint32_t ubrr = avr->data[UBRR0L_ADDR] | ((uint32_t)(avr->data[UBRR0H_ADDR] & 0x0F) << 8);
	int bits = 1 + data_bits[((c >> 1) & 3) | (b & 0x04)] + (((c >> 4) & 3) ? 1 : 0) + ((c & 0x08) ? 2 : 1);
	uint32_t per_bit = (ubrr + 1) * ((a & (1u << U2X0_BIT)) ? 8u : 16u);
	if (S.uart != NULL)
		S.uart->cycles_per_byte = per_bit * (uint32_t)bits;
}

static void hook_uart_timing(void)
{
	avr_t *avr = S.avr;
	S.uart = (avr_uart_t *)avr->io[AVR_DATA_TO_IO(UBRR0L_ADDR)].w.param;
	if (S.uart == NULL || S.uart->name != '0') {
		S.uart = NULL;
		warn("cannot find UART0 in libsimavr: byte timing stays libsimavr's own");
		return;
	}
	avr_register_io_write(avr, UCSR0A_ADDR, uart_timing, NULL);
	avr_register_io_write(avr, UCSR0C_ADDR, uart_timing, NULL);
	avr_register_io_write(avr, UBRR0L_ADDR, uart_timing, NULL);
}

static int open_pty(char *name, size_t len)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY);
	if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, name, len) != 0)
		die("cannot create a pty: %s", strerror(errno));
	/* Open the slave once: raw mode (no echo, no line editing), and the master reports POLLHUP
	 * from now on whenever no program has the slave open. */
	int slave = open(name, O_RDWR | O_NOCTTY);
	if (slave < 0)
		die("cannot open %s: %s", name, strerror(errno));
	struct termios t;
	if (tcgetattr(slave, &t) == 0) {
		cfmakeraw(&t);
		cfsetspeed(&t, B115200);
		tcsetattr(slave, TCSANOW, &t);
	}
	close(slave);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* ---- resets -------------------------------------------------------------------------------------- */

static void external_reset(void)
{
	uint8_t flags = S.avr->data[MCUSR_ADDR];
	avr_reset(S.avr);
	S.avr->data[MCUSR_ADDR] = (uint8_t)(flags | (1u << EXTRF_BIT));
	S.rx_xoff = false;
	forget_outputs();
	event("reset external");
}

/* ---- the simulation, paced to the wall clock ---------------------------------------------------- */

/* The wall-clock pacing does the waiting: simavr's own sleep would stall the pty. */
static void sim_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
	(void)avr;
	(void)how_long;
}

static bool cpu_halted(int state)
{
	return state == cpu_Done || state == cpu_Crashed || state == cpu_Stopped;
}

/* Runs until `target` cycles have been simulated. */
static void run_until(uint64_t target)
{
	avr_t *avr = S.avr;
	while (S.cycles < target) {
		if (cpu_halted(avr->state)) {
			S.cycles = target; /* a halted chip only waits (for a reset) */
			return;
		}
		if (S.rx_pos < S.rx_len)
			feed_uart();
		bool watchdog_reset = avr->run != S.plain_run; /* the watchdog fired: this step resets */
		uint8_t flags = avr->data[MCUSR_ADDR];
		avr_cycle_count_t before = avr->cycle;
		int state = avr_run(avr);
		avr_cycle_count_t after = avr->cycle;
		S.cycles += after >= before ? after - before : after;
		if (watchdog_reset && avr->run == S.plain_run) {
			avr->data[MCUSR_ADDR] |= flags; /* reset flags stay until software clears them */
			S.rx_xoff = false;
			forget_outputs();
			event("reset watchdog");
		}
		if (cpu_halted(state)) {
			warn("the simulated chip %s at 0x%04X; it waits for a reset",
			     state == cpu_Crashed ? "crashed" : "stopped", avr->pc);
		}
	}
}

static void set_adc(const char *channel, const char *millivolts)
{
	char *end;
	long mv = strtol(millivolts, &end, 10);
	int irq;
	if (end == millivolts || *end != '\0' || mv < 0 || mv > 5500) {
		warn("adc: '%s' is not a voltage in millivolts (0-5500)", millivolts);
		return;
	}
	if (strcmp(channel, "temp") == 0) {
		irq = ADC_IRQ_TEMP;
	} else {
		long ch = strtol(channel, &end, 10);
		if (end == channel || *end != '\0' || ch < 0 || ch > 7) {
			warn("adc: channel '%s' is not 0-7 or temp", channel);
			return;
		}
		irq = ADC_IRQ_ADC0 + (int)ch;
	}
	avr_raise_irq(avr_io_getirq(S.avr, AVR_IOCTL_ADC_GETIRQ, irq), (uint32_t)mv);
}

/* Returns false on "quit". */
static bool command(char *line)
{
	char *argv[4] = {0};
	int argc = 0;
	for (char *tok = strtok(line, " \t\r"); tok != NULL && argc < 4; tok = strtok(NULL, " \t\r"))
		argv[argc++] = tok;
	if (argc == 0)
		return true;
	if (strcmp(argv[0], "quit") == 0)
		return false;
	if (strcmp(argv[0], "reset") == 0 && argc == 1) {
		external_reset();
	} else if (strcmp(argv[0], "adc") == 0 && argc == 3) {
		set_adc(argv[1], argv[2]);
	} else if (strcmp(argv[0], "pin") == 0 && argc == 3) {
		int port, bit;
		if (!parse_pin(argv[1], &port, &bit))
			warn("pin: '%s' is not a pin (D0-D13, A0-A5, PB0-PD7)", argv[1]);
		else if (strcmp(argv[2], "0") != 0 && strcmp(argv[2], "1") != 0)
			warn("pin: the level must be 0 or 1, not '%s'", argv[2]);
		else
			drive_pin(port, bit, argv[2][0] == '1');
	} else {
		warn("unknown command '%s' (adc CH MV, pin NAME 0|1, reset, quit)", argv[0]);
	}
	return true;
}

/* Reads what stdin has; returns false on "quit". */
static bool read_stdin(void)
{
	char buf[512];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n == 0) {
		S.stdin_open = false;
		return !S.stdin_is_pipe; /* the parent closed our pipe: it is gone; /dev/null: run until a signal */
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? true : (S.stdin_open = false, true);
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			S.line[S.line_len] = '\0';
			S.line_len = 0;
			if (!command(S.line))
				return false;
		} else if (S.line_len + 1 < sizeof S.line) {
			S.line[S.line_len++] = buf[i];
		}
	}
	return true;
}

static void read_pty(void)
{
	if (S.rx_pos < S.rx_len)
		return; /* the UART has not taken the last chunk yet: leave the rest in the pty */
	ssize_t n = read(S.master, S.rx, sizeof S.rx);
	if (n > 0) {
		S.rx_len = (size_t)n;
		S.rx_pos = 0;
	}
}

/* Opens and closes of the slave, in order: an open after a close is DTR going active. */
static void read_opens(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(S.opens_fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			if (e->mask & IN_OPEN) {
				if (S.last_was_close && S.auto_reset)
					external_reset(); /* the Uno's capacitor pulls RESET low */
				S.last_was_close = false;
				S.slave_open = true; /* someone listens from now on */
			} else if (e->mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)) {
				S.last_was_close = true;
			}
			p += sizeof *e + e->len;
		}
	}
}

static void serve(void)
{
	uint64_t start = now_ns();
	struct pollfd fds[3];
	for (;;) {
		if (stop_requested)
			return;
		uint64_t wall = now_ns() - start;
		if (wall > cycles_to_ns(S.cycles) + MAX_LAG_NS) { /* the host stalled us: go on from here */
			start += wall - cycles_to_ns(S.cycles);
			wall = cycles_to_ns(S.cycles);
		}
		if (cycles_to_ns(S.cycles) <= wall)
			run_until(ns_to_cycles(wall + SLICE_NS));
		flush_tx();
		if (S.events_pending) {
			if (fflush(stdout) == EOF && errno == EPIPE)
				return; /* nobody reads our events any more */
			S.events_pending = false;
		}
		uint64_t sim = cycles_to_ns(S.cycles), later = now_ns() - start;
		uint64_t ahead = sim > later ? sim - later : 0;
		/* A master whose slave nobody has open reports POLLHUP at every poll: while so, look
		 * at it without waiting, and wait on stdin (and the clock) alone. */
		if (S.opens_fd >= 0)
			read_opens();
		struct pollfd probe = {.fd = S.master, .events = POLLIN};
		if (poll(&probe, 1, 0) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		bool open_now = !(probe.revents & POLLHUP);
		if (open_now != S.slave_open) {
			S.slave_open = open_now;
			if (!open_now) {
				S.tx_len = 0;
				S.rx_len = S.rx_pos = 0;
			} else if (S.auto_reset && S.opens_fd < 0) {
				external_reset(); /* DTR went active (seen without inotify: a quick close-open may be missed) */
			}
			continue;
		}
		fds[0] = (struct pollfd){.fd = open_now ? S.master : -1, .events = POLLIN | (S.tx_len ? POLLOUT : 0)};
		if (S.rx_pos < S.rx_len)
			fds[0].events &= (short)~POLLIN;
		fds[1] = (struct pollfd){.fd = S.stdin_open ? STDIN_FILENO : -1, .events = POLLIN};
		fds[2] = (struct pollfd){.fd = S.opens_fd, .events = POLLIN};
		struct timespec timeout = {.tv_sec = (time_t)(ahead / 1000000000ull), .tv_nsec = (long)(ahead % 1000000000ull)};
		int n = ppoll(fds, 3, &timeout, NULL);
		if (n < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		if (fds[0].revents & POLLHUP)
			continue; /* closed meanwhile: noticed at the top */
		if (open_now && (fds[0].revents & POLLIN))
			read_pty();
		if ((fds[1].revents & (POLLIN | POLLHUP)) && !read_stdin())
			return;
		if (fds[1].revents & (POLLERR | POLLNVAL))
			S.stdin_open = false;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: roost-simavr [--freq HZ] [--bootloader BOOT.hex] [--auto-reset] [FIRMWARE.hex]\n"
	                "  (FIRMWARE.hex may be left out with --bootloader: an empty application)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *firmware = NULL, *bootloader = NULL;
	char ptyname[64];
	S.freq = 16000000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--freq") == 0 && i + 1 < argc) {
			char *end;
			unsigned long f = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || f < 1000 || f > 20000000)
				die("--freq: '%s' is not a clock frequency in Hz (1000-20000000)", argv[i]);
			S.freq = (uint32_t)f;
		} else if (strcmp(argv[i], "--bootloader") == 0 && i + 1 < argc) {
			bootloader = argv[++i];
		} else if (strcmp(argv[i], "--auto-reset") == 0) {
			S.auto_reset = true;
		} else if (strcmp(argv[i], "--help") == 0 || argv[i][0] == '-' || firmware != NULL) {
			usage();
		} else {
			firmware = argv[i];
		}
	}
	if (firmware == NULL && bootloader == NULL)
		usage();

	avr_global_logger_set(sim_logger);
	S.avr = avr_make_mcu_by_name("atmega328p");
	if (S.avr == NULL)
		die("libsimavr has no ATmega328P");
	avr_init(S.avr);
	S.avr->log = getenv("ROOST_SIMAVR_TRACE") ? LOG_TRACE : LOG_ERROR;
	S.avr->frequency = S.freq;
	S.avr->vcc = S.avr->avcc = S.avr->aref = 5000;
	S.avr->sleep = sim_sleep;
	S.plain_run = S.avr->run;

	static uint8_t written[FLASH_SIZE];
	uint32_t lowest = 0;
	if (firmware != NULL)
		load_hex(firmware, written, &lowest);
	if (bootloader != NULL) {
		load_hex(bootloader, written, &lowest);
		S.avr->reset_pc = lowest; /* BOOTRST: every reset starts the bootloader */
	}
	S.avr->codeend = S.avr->flashend;

	S.tx = malloc(TX_MAX);
	if (S.tx == NULL)
		die("out of memory");
	forget_outputs();
	for (int p = 0; p < 3; p++)
		for (int b = 0; b < 8; b++)
			avr_irq_register_notify(avr_io_getirq(S.avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_NAMES[p]), b), pin_changed,
			                        (void *)(intptr_t)(p * 8 + b));
	S.uart_in = avr_io_getirq(S.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_irq_register_notify(avr_io_getirq(S.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_output, NULL);
	avr_irq_register_notify(avr_io_getirq(S.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), uart_xoff, NULL);
	hook_uart_timing();
	uint32_t uart_flags = 0; /* no polling sleep, no console echo */
	avr_ioctl(S.avr, AVR_IOCTL_UART_SET_FLAGS('0'), &uart_flags);

	/* Power-on: start where the fuses say, PORF set. */
	avr_reset(S.avr);
	S.avr->data[MCUSR_ADDR] = 1u << PORF_BIT;

	S.master = open_pty(ptyname, sizeof ptyname);
	S.last_was_close = true;
	S.opens_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (S.opens_fd >= 0 && inotify_add_watch(S.opens_fd, ptyname, IN_OPEN | IN_CLOSE) < 0) {
		close(S.opens_fd);
		S.opens_fd = -1;
	}
	struct stat st;
	S.stdin_is_pipe = fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	S.stdin_open = true;
	fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("pty: %s\n", ptyname);
	fflush(stdout);

	uint64_t started = now_ns();
	serve();
	fflush(stdout);
	if (getenv("ROOST_SIMAVR_TRACE"))
		warn("simulated %.3f s in %.3f s", (double)cycles_to_ns(S.cycles) / 1e9, (double)(now_ns() - started) / 1e9);
	if (S.tx_dropped)
		warn("%lu bytes from the chip were dropped: nobody read the pty", S.tx_dropped);
	avr_terminate(S.avr);
	close(S.master);
	return 0;
}
