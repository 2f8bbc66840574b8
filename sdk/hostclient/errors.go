package hostclient

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lemctl/lemctl/sdk"
)

// codeSentinels maps each gRPC code back to the sentinel a plugin's error wrapped (package sdk
// maps the sentinels to the codes).
var codeSentinels = map[codes.Code]error{
	codes.InvalidArgument:    sdk.ErrInvalidArgument,
	codes.NotFound:           sdk.ErrNotFound,
	codes.AlreadyExists:      sdk.ErrAlreadyExists,
	codes.FailedPrecondition: sdk.ErrFailedPrecondition,
	codes.Unavailable:        sdk.ErrUnavailable,
	codes.Unimplemented:      sdk.ErrUnimplemented,
	codes.Canceled:           context.Canceled,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
}

// RPCError is an error that came back from a plugin. errors.Is matches the sentinel its code
// stands for (sdk.ErrNotFound, …).
type RPCError struct {
	Code     codes.Code
	Message  string
	sentinel error
}

func (e *RPCError) Error() string { return e.Message }

// Unwrap returns the sentinel the code stands for, or nil.
func (e *RPCError) Unwrap() error { return e.sentinel }

// fromStatus turns a gRPC error from a plugin back into a Go error for which errors.Is finds the
// sentinel the plugin used.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &RPCError{Code: st.Code(), Message: st.Message(), sentinel: codeSentinels[st.Code()]}
	if st.Code() == codes.Unavailable && e.Message != "" {
		e.Message = "plugin unavailable: " + e.Message
	}
	return e
}
