package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeListener hands the server the ends of in-memory connections, so
// that its deadlines run on a synctest bubble's clock.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

// TestIdleConnectionsClosed: a connection that made a request and then
// stays silent is closed once idle for the server's idle timeout. It
// stayed open for ever: 5,000 clients that each made one request held
// 5,000 file descriptors of the demo for as long as they liked.
func TestIdleConnectionsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
		ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		c := ln.dial()
		go func() { _, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: crus\r\n\r\n") }()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		closed := make(chan error, 1)
		go func() {
			_, err := br.ReadByte()
			closed <- err
		}()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		select {
		case err := <-closed:
			if !errors.Is(err, io.EOF) {
				t.Errorf("the idle connection ended with %v; want EOF, closed by the server", err)
			}
		default:
			t.Error("a connection idle for a day is still open")
			c.Close()
			<-closed
		}
		_ = srv.Close()
		<-served
	})
}
