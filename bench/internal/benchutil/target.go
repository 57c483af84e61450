package benchutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
)

// Env is what a bench's run stands on: its own executable, a temporary
// folder, and the loopback HTTP target, which is the executable again,
// started as `self serve` so that the target has a process of its own as
// each measured tool has.
type Env struct {
	Self string // this executable, to start the bench's own subcommands
	Tmp  string // a temporary folder, removed by Close
	Addr string // the target's host:port on 127.0.0.1

	srv *exec.Cmd
	// alive is the target's stdin, never written: the target ends when it
	// closes, which the kernel does when this process ends in any way,
	// also by os.Exit, which skips the deferred Close.
	alive io.WriteCloser
}

// Setup finds the executable, makes the temporary folder (its name starts
// with "bench-<name>-") and starts the target, which must call Serve
// when run with the argument "serve". Close undoes it all.
func Setup(name string) (*Env, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	e := &Env{Self: self, Tmp: tmp, srv: exec.Command(self, "serve")}
	if e.alive, err = e.srv.StdinPipe(); err != nil {
		e.Close()
		return nil, err
	}
	stdout, err := e.srv.StdoutPipe()
	if err != nil {
		e.Close()
		return nil, err
	}
	if err := e.srv.Start(); err != nil {
		e.Close()
		return nil, err
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("target server: %w", err)
	}
	e.Addr = strings.TrimSpace(addr)
	return e, nil
}

// Close stops the target and removes the temporary folder. Calling it
// again does nothing more.
func (e *Env) Close() {
	if e.srv != nil && e.srv.Process != nil {
		_ = e.srv.Process.Kill()
		_ = e.srv.Wait()
	}
	_ = os.RemoveAll(e.Tmp)
}

// Serve is the target's side of Setup: it listens on a free loopback
// port, prints the address as one line for Setup to read, and serves h
// until the process is killed or its stdin ends (the bench that started
// it is gone). It returns only when it cannot listen.
func Serve(h http.Handler) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println(l.Addr().String())
	_ = http.Serve(l, h) // ends only with the process
	return nil
}
