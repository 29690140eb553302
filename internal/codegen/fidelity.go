package codegen

// UnfaithfulError is returned instead of a chart that would not show the request's
// data: the templates could not read the prompt's numbers (Reason
// DataNotUnderstood), or a model's chart still differs from the request after its
// repair round (DataNotAccounted). No retry fixes it: the request fails with Reason.
type UnfaithfulError struct {
	// Why is the condition reason (api/v1alpha1's ReasonDataNotUnderstood or
	// ReasonDataNotAccounted).
	Why     string
	Message string
}

func (e *UnfaithfulError) Error() string  { return e.Message }
func (e *UnfaithfulError) Reason() string { return e.Why }

// The reasons of api/v1alpha1 an UnfaithfulError carries (codegen does not
// import the API package).
const (
	reasonDataNotAccounted  = "DataNotAccounted"
	reasonDataNotUnderstood = "DataNotUnderstood"
)
