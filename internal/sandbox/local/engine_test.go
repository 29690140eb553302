package local

import "testing"

func TestParseEngine(t *testing.T) {
	for in, want := range map[string]Engine{"": EngineZygote, "zygote": EngineZygote, "agent": EngineAgent} {
		got, err := ParseEngine(in)
		if err != nil || got != want {
			t.Errorf("ParseEngine(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Agent", "fork", " agent"} {
		if _, err := ParseEngine(bad); err == nil {
			t.Errorf("ParseEngine(%q) accepted", bad)
		}
	}
}
