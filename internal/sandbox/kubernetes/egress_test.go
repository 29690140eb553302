package kubernetes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestEgressRules: the class's allow-list, and only it, leaves a sandbox; the cloud
// metadata address never does, even inside a listed CIDR.
func TestEgressRules(t *testing.T) {
	type rule struct {
		cidr   string
		except []string
		ports  []int
	}
	tests := map[string]struct {
		in   []EgressRule
		want []rule
	}{
		"no rules: no egress at all": {nil, nil},
		"a public CIDR on 443": {
			[]EgressRule{{CIDR: "203.0.113.0/24", Ports: []int32{443}}},
			[]rule{{cidr: "203.0.113.0/24", ports: []int{443}}},
		},
		"everything still excepts the metadata address": {
			[]EgressRule{{CIDR: "0.0.0.0/0"}},
			[]rule{{cidr: "0.0.0.0/0", except: []string{"169.254.169.254/32"}}},
		},
		"link-local listed: metadata excepted, the class's own excepts kept": {
			[]EgressRule{{CIDR: "169.254.0.0/16", Except: []string{"169.254.1.0/24"}}},
			[]rule{{cidr: "169.254.0.0/16", except: []string{"169.254.1.0/24", "169.254.169.254/32"}}},
		},
		"the metadata address itself is dropped": {
			[]EgressRule{{CIDR: "169.254.169.254/32"}, {CIDR: "198.51.100.7/32", Ports: []int32{5432}}},
			[]rule{{cidr: "198.51.100.7/32", ports: []int{5432}}},
		},
		"a CIDR that does not parse allows nothing": {
			[]EgressRule{{CIDR: "example.com"}},
			nil,
		},
		"a host address is normalised to its network": {
			[]EgressRule{{CIDR: "203.0.113.9/24"}},
			[]rule{{cidr: "203.0.113.0/24"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []rule
			for _, r := range egressRules(tc.in) {
				if len(r.To) != 1 || r.To[0].IPBlock == nil || r.To[0].PodSelector != nil || r.To[0].NamespaceSelector != nil {
					t.Fatalf("rule %+v is not one IP block", r)
				}
				g := rule{cidr: r.To[0].IPBlock.CIDR, except: r.To[0].IPBlock.Except}
				for _, p := range r.Ports {
					if p.Protocol == nil || *p.Protocol != "TCP" {
						t.Errorf("port %+v is not TCP", p)
					}
					g.ports = append(g.ports, p.Port.IntValue())
				}
				got = append(got, g)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(rule{})); diff != "" {
				t.Errorf("egress (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetworkPolicyDeniesEgressWithoutRules: no allow-list means policy type Egress
// with no rule, which denies everything (DNS included).
func TestNetworkPolicyDeniesEgressWithoutRules(t *testing.T) {
	np := RenderNetworkPolicy(testSettings, ManagerPeer{Namespace: "ops", PodLabels: map[string]string{"a": "b"}})
	if len(np.Spec.Egress) != 0 {
		t.Errorf("egress %+v, want none", np.Spec.Egress)
	}
	hasEgress := false
	for _, pt := range np.Spec.PolicyTypes {
		hasEgress = hasEgress || pt == networkingv1.PolicyTypeEgress
	}
	if !hasEgress {
		t.Errorf("policy types %v lack Egress: egress would be open", np.Spec.PolicyTypes)
	}
}
