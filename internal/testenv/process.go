package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one control-plane process started by the environment.
type Process struct {
	// Name identifies the process in logs ("etcd", "istiod-1-31-0", ...).
	Name string
	// Path is the binary, Args its arguments, LogPath the file that receives
	// its stdout and stderr.
	Path    string
	Args    []string
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	stopped sync.Once
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

func startProcess(name, path, dir, logDir string, env, args []string) (*Process, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (build it with `make tools`)", ErrBinaryMissing, name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group, so that a stop reaches anything it forks.
		Setpgid: true,
		// Dies with the test binary, even when that is SIGKILLed.
		Pdeathsig: syscall.SIGKILL,
	}
	fmt.Fprintf(lf, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Path: path, Args: args, LogPath: logPath, cmd: cmd, logFile: lf, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	recordPid(p)
	return p, nil
}

// recordPid appends "pid starttime name" to $REVKIT_TESTENV_PIDFILE, so that a
// test run can check afterwards that none of its processes survived.
func recordPid(p *Process) {
	file := os.Getenv("REVKIT_TESTENV_PIDFILE")
	if file == "" {
		return
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%d %s %s\n", p.Pid(), procStartTime(p.Pid()), p.Name)
}

// procStartTime returns field 22 of /proc/<pid>/stat (start time in clock
// ticks since boot), which tells a pid apart from a later reuse of it.
func procStartTime(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "?"
	}
	s := string(b)
	// The command name may contain spaces; fields restart after its ')'.
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 19 {
			return f[19]
		}
	}
	return "?"
}

// ProcessAlive reports whether a process with this pid exists and is not a
// zombie.
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return false
		}
	}
	return true
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL, and waits until the process is reaped. It is safe to call more
// than once.
func (p *Process) Stop(grace time.Duration) error {
	p.stopped.Do(func() {
		pgid := p.cmd.Process.Pid
		if !p.Exited() {
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
			}
		}
		// The group may hold children even after the leader exited.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	})
	if p.Exited() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit", p.Name, p.Pid())
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	return tailFile(p.LogPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrBinaryMissing is returned when a control-plane binary is not in the
// binary directory; `make tools` builds them.
var ErrBinaryMissing = errors.New("testenv: binary missing")

// ErrProcessExited is returned when a process ends while the environment
// waits for it to become ready.
var ErrProcessExited = errors.New("testenv: process exited")

// poll calls cond every interval until it returns nil, ctx ends, or one of
// the watched processes exits. An error from cond means "not yet"; the last
// one is reported on timeout.
func poll(ctx context.Context, what string, interval time.Duration, watch []*Process, cond func(context.Context) error) error {
	var lastErr error
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		lastErr = err
		for _, p := range watch {
			if p.Exited() {
				return fmt.Errorf("waiting for %s: %w: %s: %v (last: %v)\n%s", what, ErrProcessExited, p.Name, p.waitErr, lastErr, p.Tail(30))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), lastErr)
		case <-time.After(interval):
		}
	}
}
