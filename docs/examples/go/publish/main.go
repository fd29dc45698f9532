// Command publish publishes events to spout over its TCP line protocol.
// Standard library only.
//
//	go run ./publish TOPIC DATA...            each DATA is one event, pipelined
//	tail -F app.log | go run ./publish logs   no DATA: one event per stdin line
//	go run ./publish -type alert news "$(printf 'line one\nline two')"
//
// Environment: SPOUT_PUB (HOST:PORT of the publisher listener, default
// 127.0.0.1:7400) and SPOUT_PUB_TOKEN (sent as AUTH <token> when set).
// Prints the broker's reply per event, "OK <id>" or "ERR <reason>", and exits
// 1 if any event was refused, 2 if AUTH was.
//
// Delivery is at least once: a command whose reply was lost with its
// connection is sent again on the next one, so it may be published twice.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

// Event is one event to publish. An empty Type means none (EventSource
// dispatches it as "message").
type Event struct {
	Topic string
	Type  string
	Data  []byte
}

// ReplyError is the broker's "ERR <reason>": the command was not published.
type ReplyError struct{ Reason string }

func (e *ReplyError) Error() string { return "spout: " + e.Reason }

// AuthError means AUTH was refused: retrying with the same token cannot help.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return "spout: AUTH refused: " + e.Reason }

// Result is the outcome of one event: its id, or a *ReplyError.
type Result struct {
	ID  uint64
	Err error
}

// Lines the broker sends on its own just before it closes the connection.
// They answer no command: the command they seem to answer was not executed.
var closing = []string{"idle timeout", "too many publisher connections", "auth required: no AUTH in time"}

func isClosing(line string) bool {
	for _, c := range closing {
		if strings.HasPrefix(line, "ERR "+c) {
			return true
		}
	}
	return false
}

// Encode turns an event into a command. Text without line breaks (or CR,
// NUL) and without a type goes as PUB; anything else as EVENT, whose payload
// is length-framed and may hold any bytes.
func Encode(ev Event) ([]byte, error) {
	typ := ev.Type
	if typ == "" {
		typ = "-"
	}
	for _, f := range []string{ev.Topic, typ} {
		if f == "" || strings.ContainsAny(f, " \r\n\x00") {
			return nil, fmt.Errorf("topic or type %q: must be non-empty, without spaces or line breaks", f)
		}
	}
	if ev.Type == "" && !bytes.ContainsAny(ev.Data, "\r\n\x00") {
		return []byte("PUB " + ev.Topic + " " + string(ev.Data) + "\n"), nil
	}
	cmd := fmt.Sprintf("EVENT %s %s %d\n", ev.Topic, typ, len(ev.Data))
	return append(append([]byte(cmd), ev.Data...), '\n'), nil
}

// Publisher is one connection to spout's publisher port, reopened when it
// breaks. Not safe for concurrent use.
type Publisher struct {
	Addr       string        // HOST:PORT
	Token      string        // sent as AUTH <token> when not empty
	Timeout    time.Duration // for connecting, and for each batch of replies
	MaxBackoff time.Duration

	conn net.Conn
	r    *bufio.Reader
	rng  *rand.Rand
}

const window = 1000 // commands in flight at once when pipelining

// Publish publishes one event and returns its id.
func (p *Publisher) Publish(ctx context.Context, ev Event) (uint64, error) {
	res, err := p.PublishMany(ctx, []Event{ev})
	if err != nil {
		return 0, err
	}
	return res[0].ID, res[0].Err
}

// PublishMany publishes events, pipelined, and returns one Result per event,
// in order. The error is for what stops the whole batch: a bad event, a
// refused AUTH, or ctx ending while the broker is unreachable.
func (p *Publisher) PublishMany(ctx context.Context, evs []Event) ([]Result, error) {
	cmds := make([][]byte, len(evs))
	for i, ev := range evs {
		var err error
		if cmds[i], err = Encode(ev); err != nil {
			return nil, err
		}
	}
	replies, err := p.roundtrip(ctx, cmds)
	if err != nil {
		return nil, err
	}
	res := make([]Result, len(replies))
	for i, line := range replies {
		if strings.HasPrefix(line, "OK ") {
			if n, err := strconv.ParseUint(line[3:], 10, 64); err == nil {
				res[i].ID = n
				continue
			}
		}
		res[i].Err = &ReplyError{Reason: strings.TrimPrefix(line, "ERR ")}
	}
	return res, nil
}

// Close says QUIT and closes the connection.
func (p *Publisher) Close() {
	if p.conn != nil {
		p.conn.SetDeadline(time.Now().Add(time.Second))
		p.conn.Write([]byte("QUIT\n"))
		p.drop()
	}
}

// roundtrip sends commands and returns their reply lines, in order. Replies
// come in command order, one line each, so pipelining is just counting.
func (p *Publisher) roundtrip(ctx context.Context, cmds [][]byte) ([]string, error) {
	replies := make([]string, 0, len(cmds))
	failures := 0
	for len(replies) < len(cmds) {
		err := p.connect(ctx)
		if err == nil {
			end := len(replies) + window
			if end > len(cmds) {
				end = len(cmds)
			}
			pending := cmds[len(replies):end]
			p.conn.SetDeadline(time.Now().Add(p.Timeout))
			if _, err = p.conn.Write(bytes.Join(pending, nil)); err == nil {
				for range pending {
					var line string
					if line, err = p.readLine(); err != nil {
						break
					}
					if isClosing(line) {
						err = errors.New("broker closed the connection: " + line)
						break
					}
					replies = append(replies, line)
				}
			}
		}
		var authErr *AuthError
		if errors.As(err, &authErr) {
			p.drop()
			return nil, err
		}
		if err == nil {
			failures = 0
			continue
		}
		p.drop()
		failures++
		delay := time.Duration(100<<failures) * time.Millisecond
		if delay > p.MaxBackoff || delay <= 0 {
			delay = p.MaxBackoff
		}
		delay = delay/2 + time.Duration(p.rng.Int63n(int64(delay/2)+1))
		log.Printf("%s: %v; %d command(s) unanswered, retrying in %v",
			p.Addr, err, len(cmds)-len(replies), delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	return replies, nil
}

func (p *Publisher) connect(ctx context.Context) error {
	if p.rng == nil {
		p.rng = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	if p.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: p.Timeout}
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	p.conn, p.r = conn, bufio.NewReader(conn)
	if p.Token != "" {
		conn.SetDeadline(time.Now().Add(p.Timeout))
		if _, err := conn.Write([]byte("AUTH " + p.Token + "\n")); err != nil {
			return err
		}
		line, err := p.readLine()
		if err != nil {
			return err
		}
		if isClosing(line) {
			return errors.New("broker closed the connection: " + line)
		}
		if line != "OK" {
			return &AuthError{Reason: strings.TrimPrefix(line, "ERR ")}
		}
	}
	log.Printf("connected to %s", p.Addr)
	return nil
}

func (p *Publisher) readLine() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (p *Publisher) drop() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.r = nil, nil
}

func main() {
	typ := flag.String("type", "", "event type (EventSource listeners use it); default none")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: publish [-type TYPE] TOPIC [DATA...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("publish: ")
	addr := os.Getenv("SPOUT_PUB")
	if addr == "" {
		addr = "127.0.0.1:7400"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pub := &Publisher{Addr: addr, Token: os.Getenv("SPOUT_PUB_TOKEN"),
		Timeout: 10 * time.Second, MaxBackoff: 10 * time.Second}
	defer pub.Close()

	topic, refused := flag.Arg(0), 0
	report := func(res []Result, err error) {
		if err != nil {
			log.Print(err)
			pub.Close()
			os.Exit(2)
		}
		for _, r := range res {
			if r.Err != nil {
				refused++
				fmt.Println("ERR", r.Err.(*ReplyError).Reason)
			} else {
				fmt.Println("OK", r.ID)
			}
		}
	}
	if flag.NArg() > 1 {
		evs := make([]Event, 0, flag.NArg()-1)
		for _, d := range flag.Args()[1:] {
			evs = append(evs, Event{Topic: topic, Type: *typ, Data: []byte(d)})
		}
		report(pub.PublishMany(ctx, evs))
	} else {
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 64*1024), 1<<20)
		for in.Scan() {
			report(pub.PublishMany(ctx, []Event{{Topic: topic, Type: *typ, Data: in.Bytes()}}))
		}
	}
	if refused > 0 {
		pub.Close()
		os.Exit(1)
	}
}
