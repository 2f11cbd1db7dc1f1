package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Events go to stderr, as they always did, and with -events-file to a file
// as well, reopened on SIGHUP (and on the admin reload) so logrotate's
// rename-then-HUP works: lines written before the reload land in the
// renamed file, lines after it in a new one at the same path.
//
// The file is written by one goroutine from a bounded queue, so a slow or
// failing disk never stalls the packet path (events are emitted
// synchronously by the broker's connection goroutines), lines never
// interleave, and what cannot be written is counted and reported on stderr
// instead of blocking or crashing the broker. The WAF's own limit
// (events.max_per_second, burst 10x) bounds what arrives; the queue holds
// more than a burst, so lines are lost only when the disk stays slower than
// that limit, and then they are counted.

// eventQueue is how many lines the file's queue holds: above the default
// burst of 1000 events, and at most a few MiB of lines.
const eventQueue = 4096

// reportEvery is how often write failures and lost lines are reported on
// stderr while they last.
const reportEvery = 10 * time.Second

// eventOutput is where the WAF writes event lines (mqttwaf.Options
// EventOutput): stderr, and the -events-file file if set.
type eventOutput struct {
	stderr io.Writer
	file   *eventFile // nil without -events-file
}

// newEventOutput opens path (if not empty) for appending events.
func newEventOutput(path string, stderr io.Writer, log *slog.Logger) (*eventOutput, error) {
	out := &eventOutput{stderr: stderr}
	if path == "" {
		return out, nil
	}
	f, err := openEventFile(path, log)
	if err != nil {
		return nil, err
	}
	out.file = f
	return out, nil
}

// Write writes one event line to stderr and queues it for the file. It
// never fails: an event that could not be written is counted, not returned
// to the packet path.
func (o *eventOutput) Write(p []byte) (int, error) {
	_, _ = o.stderr.Write(p)
	if o.file != nil {
		o.file.enqueue(p)
	}
	return len(p), nil
}

// Reopen reopens the events file (after logrotate renamed it).
func (o *eventOutput) Reopen() error {
	if o.file == nil {
		return nil
	}
	return o.file.reopen()
}

// Close writes what is queued and closes the file.
func (o *eventOutput) Close() {
	if o.file != nil {
		o.file.close()
	}
}

// eventFile appends event lines to a file from a queue, in one goroutine.
type eventFile struct {
	path    string
	log     *slog.Logger
	lines   chan []byte
	reopens chan chan error
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once

	written, failed, dropped atomic.Uint64
}

func openEventFile(path string, log *slog.Logger) (*eventFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	e := &eventFile{path: path, log: log, lines: make(chan []byte, eventQueue), reopens: make(chan chan error),
		quit: make(chan struct{}), done: make(chan struct{})}
	go e.run(f)
	return e, nil
}

// openAppend opens path for appending, creating it readable by the
// broker's user and group only: events name clients, users and addresses.
func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("-events-file: %w (check that the directory exists and the broker's user may write there)", err)
	}
	return f, nil
}

// enqueue queues a copy of line (the caller reuses its buffer), or counts
// it as dropped when the queue is full or the file closed.
func (e *eventFile) enqueue(line []byte) {
	select {
	case <-e.quit:
		e.dropped.Add(1)
		return
	default:
	}
	select {
	case e.lines <- append([]byte(nil), line...):
	default:
		e.dropped.Add(1)
	}
}

// reopen asks the writer to reopen the file once the lines queued so far
// are written (to the old file, which logrotate has renamed).
func (e *eventFile) reopen() error {
	reply := make(chan error, 1)
	select {
	case e.reopens <- reply:
		return <-reply
	case <-e.done:
		return errors.New("-events-file: closed")
	}
}

func (e *eventFile) close() {
	e.once.Do(func() { close(e.quit) })
	<-e.done
}

// run is the writer goroutine.
func (e *eventFile) run(f *os.File) {
	defer close(e.done)
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	var (
		lastErr                 error
		reported                time.Time
		failedSeen, droppedSeen uint64
	)
	report := func(force bool) {
		failed, dropped := e.failed.Load(), e.dropped.Load()
		if failed == failedSeen && dropped == droppedSeen || !force && time.Since(reported) < reportEvery {
			return
		}
		attrs := []any{"events_file", e.path, "failed_writes", failed - failedSeen, "lost_lines", dropped - droppedSeen,
			"failed_writes_total", failed, "lost_lines_total", dropped}
		if lastErr != nil {
			attrs = append(attrs, "error", lastErr.Error())
		}
		e.log.Error("events file: lines not written (they are still on stderr); check the disk and the file's permissions, then reload (SIGHUP) to reopen it", attrs...)
		failedSeen, droppedSeen, reported, lastErr = failed, dropped, time.Now(), nil
	}
	write := func(b []byte) {
		if _, err := f.Write(b); err != nil {
			e.failed.Add(1)
			lastErr = err
			report(false)
			return
		}
		e.written.Add(1)
	}
	drain := func() {
		for {
			select {
			case b := <-e.lines:
				write(b)
			default:
				return
			}
		}
	}
	for {
		select {
		case b := <-e.lines:
			write(b)
		case reply := <-e.reopens:
			drain()
			nf, err := openAppend(e.path)
			if err != nil {
				reply <- fmt.Errorf("%w; events still go to the file opened before", err)
				continue
			}
			_ = f.Close()
			f = nf
			reply <- nil
		case <-tick.C:
			report(false)
		case <-e.quit:
			drain()
			report(true)
			_ = f.Close()
			return
		}
	}
}
