package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/lemctl/lemctl/sdk/clock"
)

// sseReader reads server-sent events (text/event-stream): "data:" lines joined with "\n", an
// event dispatched at the blank line that ends it. Comments and other fields are skipped; an event
// cut off by the end of the stream is dropped, as the format says.
type sseReader struct {
	r    *bufio.Reader
	data []byte
	has  bool
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next returns the next event's data and the instant (clock.Mono) its last line was read. It
// returns io.EOF when the stream ended between events, io.ErrUnexpectedEOF when it ended inside
// one, and the read error otherwise.
func (s *sseReader) next() ([]byte, int64, error) {
	s.data, s.has = s.data[:0], false
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				if s.has || len(line) > 0 {
					return nil, 0, io.ErrUnexpectedEOF
				}
				return nil, 0, io.EOF
			}
			return nil, 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if s.has {
				return s.data, clock.Mono(), nil
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			v := line[len("data:"):]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			if s.has {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
			s.has = true
		}
	}
}
