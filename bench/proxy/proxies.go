package main

import (
	"github.com/pilotwire/pilotwire/internal/procstat"

	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a proxy (or the upstreams) this harness started and must stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	dir  string
	log  string // where its output goes, quoted when it fails
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks politely, then insists.
func (p *proc) stop() {
	if p == nil || !p.alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

func startProc(name, dir string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".out")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, dir: dir, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// freePort asks the kernel for an unused loopback port. Another program
// could take it before the proxy binds it; on a bench machine it does not.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections or p exits.
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %s after 15s: %s", p.name, addr, p.tail())
}

// ownDir makes a subdirectory that the account a daemon switches to (when
// started as root) can write its pid file and logs in.
func ownDir(base, name, account, group string) (string, error) {
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if os.Geteuid() != 0 {
		return dir, nil
	}
	u, err := user.Lookup(account)
	if err != nil {
		return "", fmt.Errorf("%s runs as %s when started as root: %w", name, account, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if g, err := user.LookupGroup(group); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", fmt.Errorf("chown %s: %w", dir, err)
	}
	return dir, nil
}

// startSquid runs Squid in the foreground (-N: one process, no kids) with
// a minimal forward-proxy configuration: access log on, no caching, only
// localhost allowed, any CONNECT port (the bench ports are not 443).
func startSquid(ctx context.Context, bin, base string, maxFDs int) (*proc, string, error) {
	dir, err := ownDir(base, "squid", "proxy", "proxy")
	if err != nil {
		return nil, "", err
	}
	pt, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pt))
	conf := fmt.Sprintf(`# pilotwire bench: minimal forward proxy, logging like a deployed one, no cache
http_port %s
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:%[2]s/access.log squid
cache_log %[2]s/cache.log
cache_store_log none
pid_filename %[2]s/squid.pid
coredump_dir %[2]s
max_filedescriptors %[3]d
workers 1
pinger_enable off
shutdown_lifetime 0 seconds
dns_nameservers 127.0.0.1
logfile_rotate 0
`, addr, dir, maxFDs)
	if os.Geteuid() == 0 {
		conf += "cache_effective_user proxy\n"
	}
	cf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc("squid", dir, nil, bin, "-N", "-f", cf)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%w\ncache.log: %s", err, tailFile(filepath.Join(dir, "cache.log")))
	}
	return p, addr, nil
}

// startTinyproxy runs tinyproxy in the foreground with the equivalent
// minimal configuration: a log line per connection and request (LogLevel
// Connect, its access log), only 127.0.0.1 allowed, CONNECT to 443 and the
// bench ports. tinyproxy fsyncs its log after every line, which on a
// busy disk makes it wait milliseconds per request (and minutes to open
// 9,000 tunnels); so its directory is on tmpfs (/dev/shm) when there is one:
// it still formats and writes every line, like Squid, which does not sync.
func startTinyproxy(ctx context.Context, bin, base string, up ports, maxClients int) (*proc, string, error) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if shm, err := os.MkdirTemp("/dev/shm", "pilotwire-bench-"); err == nil {
			if err := os.Symlink(shm, filepath.Join(base, "shm")); err != nil {
				os.RemoveAll(shm)
				return nil, "", err
			}
			os.Chmod(shm, 0o755)
			base = shm
		}
	}
	dir, err := ownDir(base, "tinyproxy", "nobody", "nogroup")
	if err != nil {
		return nil, "", err
	}
	pt, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`# pilotwire bench: minimal forward proxy, logging each connection and request
Port %d
Listen 127.0.0.1
Timeout 600
LogFile "%[2]s/tinyproxy.log"
LogLevel Connect
PidFile "%[2]s/tinyproxy.pid"
MaxClients %[3]d
Allow 127.0.0.1
ConnectPort 443
ConnectPort %[4]d
ConnectPort %[5]d
`, pt, dir, maxClients, up.tls, up.echo)
	if os.Geteuid() == 0 {
		conf += "User nobody\nGroup nogroup\n"
	}
	cf := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pt))
	p, err := startProc("tinyproxy", dir, nil, bin, "-d", "-c", cf)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

// startPilotwire runs "pilotwire proxy" with its web page off, a fresh
// store, loopback targets allowed (the upstreams are on 127.0.0.1), and
// recording on or off, CONNECT allowed to 443 and the bench ports. extra is
// appended (for flags that change name).
func startPilotwire(ctx context.Context, bin, base, name string, up ports, record bool, extra []string, env []string) (*proc, string, error) {
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	pt, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pt))
	argv := []string{bin, "proxy", "--listen", addr, "--ui", "", "--store", filepath.Join(dir, "flows.db"),
		"--allow-private-targets", "--record=" + strconv.FormatBool(record),
		fmt.Sprintf("--connect-ports=443,%d,%d", up.tls, up.echo)}
	argv = append(argv, extra...)
	p, err := startProc(name, dir, env, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// procStats are a process's resident memory, open descriptors and CPU
// time, read from /proc.
type procStats struct {
	rssKiB int64
	fds    int
	cpu    time.Duration
}

func readProc(pid int) (procStats, error) {
	var s procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				s.rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	st, ok := procstat.Read(pid)
	if !ok {
		return s, fmt.Errorf("no /proc/%d/stat", pid)
	}
	s.cpu = st.Own
	return s, nil
}

// fdKinds counts a process's open descriptors by kind: socket, pipe,
// anon_inode (epoll, eventfd) or file.
func fdKinds(pid int) map[string]int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	m := map[string]int{}
	for _, e := range ents {
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		kind, _, _ := strings.Cut(t, ":")
		if strings.HasPrefix(t, "/") {
			kind = "file"
		}
		m[kind]++
	}
	return m
}
