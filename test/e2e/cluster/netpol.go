package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// bridgeNFCallIPTables makes bridged traffic (Pod to Pod on the CNI bridge) pass the
// host's iptables, where kube-router's firewall is; without it only routed traffic
// (Pod to host, host to Pod) would meet the NetworkPolicies.
const bridgeNFCallIPTables = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// kube-router's firewall (pkg/controllers/netpol): its chains and ipsets all start
// with these; nothing else on the machine uses them.
var (
	kubeRouterChainPrefixes = []string{"KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-"}
	kubeRouterSetPrefixes   = []string{"KUBE-SRC-", "KUBE-DST-"}
)

// startKubeRouter runs kube-router with only its network-policy firewall (no routing,
// no service proxy, no CNI of its own, no health or metrics port): it turns every
// NetworkPolicy into iptables rules and ipsets on this node. It returns once the
// firewall's chains are hooked into INPUT, FORWARD and OUTPUT.
func (c *Cluster) startKubeRouter(ctx context.Context) error {
	o := c.opts
	if err := c.bridgeNetfilter(); err != nil {
		return err
	}
	// What a killed run left (Stop cleans up after itself).
	CleanupKubeRouter(o.Log)
	t := time.Now()
	if err := c.start("kube-router", o.KubeRouter,
		"--kubeconfig="+c.Kubeconfig, "--hostname-override="+o.NodeName,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--enable-cni=false", "--health-port=0", "--metrics-port=0", "--v=1"); err != nil {
		return err
	}
	p := c.procs[len(c.procs)-1]
	var last string
	err := waitFor(ctx, 2*time.Minute, func() bool {
		select {
		case <-p.done:
			last = "kube-router exited; see " + p.log.Name()
			return true
		default:
		}
		for _, chain := range []string{"INPUT", "FORWARD", "OUTPUT"} {
			if n := len(jumpsTo(chain, "KUBE-ROUTER-"+chain)); n == 0 {
				last = "no jump from " + chain + " to KUBE-ROUTER-" + chain + " yet"
				return false
			}
		}
		return true
	})
	if err == nil && strings.Contains(last, "exited") {
		err = fmt.Errorf("%s", last)
	}
	if err != nil {
		return fmt.Errorf("kube-router's firewall did not start: %w (last: %s)", err, last)
	}
	o.Log("kube-router's network-policy firewall up in %s", time.Since(t).Round(time.Millisecond))
	return nil
}

// bridgeNetfilter makes sure bridged traffic passes iptables (br_netfilter), loading
// the module when the kernel has it as one; Stop restores the setting it found.
func (c *Cluster) bridgeNetfilter() error {
	if _, err := os.Stat(bridgeNFCallIPTables); err != nil {
		out, merr := exec.Command("modprobe", "br_netfilter").CombinedOutput()
		if _, err := os.Stat(bridgeNFCallIPTables); err != nil {
			return fmt.Errorf("NetworkPolicy enforcement needs br_netfilter (bridged Pod traffic must pass iptables), and %s is missing; modprobe br_netfilter: %v %s",
				bridgeNFCallIPTables, merr, strings.TrimSpace(string(out)))
		}
	}
	v, err := os.ReadFile(bridgeNFCallIPTables)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(v)) == "1" {
		return nil
	}
	if err := os.WriteFile(bridgeNFCallIPTables, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("setting net.bridge.bridge-nf-call-iptables=1: %w", err)
	}
	c.restoreBridgeNF = strings.TrimSpace(string(v))
	return nil
}

// stopKubeRouter undoes what startKubeRouter changed on the host, once kube-router
// has stopped: its chains, rules and ipsets, and the bridge netfilter setting.
func (c *Cluster) stopKubeRouter() {
	CleanupKubeRouter(c.opts.Log)
	if c.restoreBridgeNF != "" {
		_ = os.WriteFile(bridgeNFCallIPTables, []byte(c.restoreBridgeNF+"\n"), 0o644)
	}
}

// CleanupKubeRouter removes kube-router's firewall from the host: the jumps from the
// built-in chains, its own chains and its ipsets. kube-router leaves them in place
// when it stops (so a restart does not open the node), which would keep refusing
// traffic to addresses later runs give to other Pods.
func CleanupKubeRouter(log func(string, ...any)) {
	removed := 0
	for _, chain := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		nums := jumpsTo(chain, kubeRouterChainPrefixes...)
		sort.Sort(sort.Reverse(sort.IntSlice(nums)))
		for _, n := range nums {
			if exec.Command("iptables", "-w", "-t", "filter", "-D", chain, strconv.Itoa(n)).Run() == nil {
				removed++
			}
		}
	}
	out, _ := exec.Command("iptables", "-w", "-t", "filter", "-S").Output()
	var chains []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "-N" && hasPrefix(f[1], kubeRouterChainPrefixes) {
			chains = append(chains, f[1])
		}
	}
	// Flush all first: they jump to each other.
	for _, ch := range chains {
		_ = exec.Command("iptables", "-w", "-t", "filter", "-F", ch).Run()
	}
	for _, ch := range chains {
		if exec.Command("iptables", "-w", "-t", "filter", "-X", ch).Run() == nil {
			removed++
		}
	}
	out, _ = exec.Command("ipset", "list", "-n").Output()
	for _, name := range strings.Fields(string(out)) {
		if hasPrefix(name, kubeRouterSetPrefixes) && exec.Command("ipset", "destroy", name).Run() == nil {
			removed++
		}
	}
	if removed > 0 {
		log("removed kube-router's firewall: %d rules, chains and ipsets", removed)
	}
}

// jumpsTo returns the rule numbers in chain (filter table) whose target starts with one
// of prefixes.
func jumpsTo(chain string, prefixes ...string) []int {
	out, err := exec.Command("iptables", "-w", "-t", "filter", "-L", chain, "--line-numbers", "-n").Output()
	if err != nil {
		return nil
	}
	var nums []int
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err == nil && hasPrefix(f[1], prefixes) {
			nums = append(nums, n)
		}
	}
	return nums
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// PodFirewalled says whether kube-router has put the Pod behind its firewall chain
// (the REJECT rule for traffic no NetworkPolicy admits) and runs its traffic through
// the NetworkPolicy policy: whether that policy is in force for the Pod on the node.
func PodFirewalled(namespace, name, policy string) bool {
	out, err := exec.Command("iptables", "-w", "-t", "filter", "-S").Output()
	if err != nil {
		return false
	}
	lines := strings.Split(string(out), "\n")
	chain := ""
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" &&
			strings.Contains(l, "REJECT traffic destined for POD name:"+name+" namespace: "+namespace+"\"") {
			chain = f[1]
		}
	}
	if chain == "" {
		return false
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+chain+" ") && strings.Contains(l, "\"run through nw policy "+policy+"\"") {
			return true
		}
	}
	return false
}

// IPSets returns kube-router's ipsets as `ipset list` prints them (for checking what
// it made of an ipBlock).
func IPSets() string {
	out, _ := exec.Command("ipset", "list").Output()
	var b strings.Builder
	keep := false
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "Name: "); ok {
			keep = hasPrefix(name, kubeRouterSetPrefixes)
		}
		if keep {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// NetnsOf returns the network namespace (under /var/run/netns, as the CNI plugins made
// it) that holds ip, for running a probe from a Pod's own network.
func NetnsOf(ip string) (string, error) {
	for ns := range netnsSet() {
		out, err := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show").Output()
		if err == nil && strings.Contains(string(out), " "+ip+"/") {
			return ns, nil
		}
	}
	return "", fmt.Errorf("no network namespace holds %s", ip)
}
