package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var sentinelCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrUnavailable, codes.Unavailable},
	{ErrUnimplemented, codes.Unimplemented},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus turns a plugin's Go error into a gRPC status that keeps its sentinel as the code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isPlain(err) {
		return err
	}
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return status.Error(s.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// isPlain reports whether err is not itself a gRPC status error.
func isPlain(err error) bool {
	_, ok := err.(interface{ GRPCStatus() *status.Status })
	return !ok
}

// RPCError is an error that came back from a plugin. errors.Is matches the sentinel its code
// stands for (ErrNotFound, …).
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
	e := &RPCError{Code: st.Code(), Message: st.Message()}
	for _, s := range sentinelCodes {
		if s.code == st.Code() {
			e.sentinel = s.err
		}
	}
	if st.Code() == codes.Unavailable && e.Message != "" {
		e.Message = "plugin unavailable: " + e.Message
	}
	return e
}
