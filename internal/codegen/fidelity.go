package codegen

// UnfaithfulError is returned instead of a chart that would not show the request's
// data: the templates could not read the prompt's numbers (Reason
// DataNotUnderstood), or a model's chart still differs from the request after its
// repair round (DataNotAccounted). No retry fixes it: the request fails with Reason.
type UnfaithfulError struct {
	// Why is ReasonDataNotUnderstood or ReasonDataNotAccounted.
	Why     string
	Message string
}

func (e *UnfaithfulError) Error() string  { return e.Message }
func (e *UnfaithfulError) Reason() string { return e.Why }

// The reasons an UnfaithfulError carries. codegen does not import the API package;
// the values are the API's condition reasons of the same names, which the controller
// uses as they are (a test there checks they agree).
const (
	ReasonDataNotAccounted  = "DataNotAccounted"
	ReasonDataNotUnderstood = "DataNotUnderstood"
)
