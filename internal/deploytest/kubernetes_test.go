package deploytest

import (
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herd-dev/herd/internal/config"
)

// object is the part of a Kubernetes object that the tests read; Spec is
// decoded by kind.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	Resources  []string          `yaml:"resources"` // a Kustomization's
}

// The types below mirror the few fields of the Kubernetes API that the
// tests read.

type statefulSetSpec struct {
	ServiceName string `yaml:"serviceName"`
	Replicas    int    `yaml:"replicas"`
	Template    struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	} `yaml:"volumeClaimTemplates"`
}

type podSpec struct {
	Affinity struct {
		PodAntiAffinity struct {
			Required  []podAffinityTerm `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
			Preferred []struct {
				Weight          int             `yaml:"weight"`
				PodAffinityTerm podAffinityTerm `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	SecurityContext securityContext `yaml:"securityContext"`
	Containers      []container     `yaml:"containers"`
	Volumes         []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type podAffinityTerm struct {
	TopologyKey   string        `yaml:"topologyKey"`
	LabelSelector labelSelector `yaml:"labelSelector"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// selects reports whether the selector picks pods with these labels.
func (s labelSelector) selects(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return len(s.MatchLabels) > 0
}

type podDisruptionBudgetSpec struct {
	MaxUnavailable *int          `yaml:"maxUnavailable"`
	MinAvailable   *int          `yaml:"minAvailable"`
	Selector       labelSelector `yaml:"selector"`
}

type securityContext struct {
	RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	RunAsUser    *int  `yaml:"runAsUser"`
}

type container struct {
	Args  []string `yaml:"args"`
	Env   []envVar `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe    *probe          `yaml:"startupProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	SecurityContext securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	ValueFrom struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name     string `yaml:"name"`
			Key      string `yaml:"key"`
			Optional bool   `yaml:"optional"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a container port's name
	} `yaml:"httpGet"`
}

type serviceSpec struct {
	Type                     string            `yaml:"type"`
	ClusterIP                string            `yaml:"clusterIP"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Selector                 map[string]string `yaml:"selector"`
	Ports                    []struct {
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

// port resolves a port number or name to a number.
func (c container) port(ref string) int {
	for _, p := range c.Ports {
		if p.Name == ref {
			return p.ContainerPort
		}
	}
	n, _ := strconv.Atoi(ref)
	return n
}

// hasPort reports whether the container declares port n.
func (c container) hasPort(n int) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == n {
			return true
		}
	}
	return false
}

// env returns the variable called name, or the zero envVar.
func (c container) env(name string) envVar {
	for _, e := range c.Env {
		if e.Name == name {
			return e
		}
	}
	return envVar{}
}

// mountPath is where the container mounts volume, "" if nowhere.
func (c container) mountPath(volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

// kubernetes is every object in deploy/k8s, by kind.
type kubernetes map[string][]object

func readKubernetes(t *testing.T) kubernetes {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/k8s: no manifests (%v)", err)
	}
	k := kubernetes{}
	for _, f := range files {
		for _, o := range decodeYAML[object](t, filepath.Join("deploy/k8s", filepath.Base(f))) {
			k[o.Kind] = append(k[o.Kind], o)
		}
	}
	return k
}

// one returns the only object of kind.
func (k kubernetes) one(t *testing.T, kind string) object {
	t.Helper()
	if len(k[kind]) != 1 {
		t.Fatalf("deploy/k8s: %d objects of kind %s, want 1", len(k[kind]), kind)
	}
	return k[kind][0]
}

// named returns the object of kind called name.
func (k kubernetes) named(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range k[kind] {
		if o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("deploy/k8s: no %s named %q", kind, name)
	return object{}
}

// configData is the herd configuration in the ConfigMap.
func (k kubernetes) configData(t *testing.T) []byte {
	t.Helper()
	cm := k.one(t, "ConfigMap")
	if len(cm.Data) != 1 {
		t.Fatalf("ConfigMap %s: %d keys, want the one configuration file", cm.Metadata.Name, len(cm.Data))
	}
	for _, data := range cm.Data {
		return []byte(data)
	}
	return nil
}

// decodeSpec decodes the spec of o as a T.
func decodeSpec[T any](t *testing.T, o object) T {
	t.Helper()
	var spec T
	if err := o.Spec.Decode(&spec); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
	return spec
}

func TestKubernetes(t *testing.T) {
	k := readKubernetes(t)
	ns := k.one(t, "Namespace").Metadata.Name
	for kind, objs := range k {
		for _, o := range objs {
			if kind != "Namespace" && kind != "Kustomization" && o.Metadata.Namespace != ns {
				t.Errorf("%s %s: namespace %q, want %q", kind, o.Metadata.Name, o.Metadata.Namespace, ns)
			}
		}
	}
	cm, secret, stsObj := k.one(t, "ConfigMap"), k.one(t, "Secret"), k.one(t, "StatefulSet")
	sts := decodeSpec[statefulSetSpec](t, stsObj)
	svcObj := k.named(t, "Service", sts.ServiceName)
	svc := decodeSpec[serviceSpec](t, svcObj)
	podLabels := sts.Template.Metadata.Labels
	pod := sts.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("StatefulSet: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	cfg := parseConfig(t, "ConfigMap "+cm.Metadata.Name, k.configData(t))

	t.Run("server names are pod names", func(t *testing.T) {
		var pods []string
		for i := range sts.Replicas {
			pods = append(pods, fmt.Sprintf("%s-%d", stsObj.Metadata.Name, i))
		}
		if names := slices.Sorted(slices.Values(cfg.Names())); !slices.Equal(names, pods) {
			t.Errorf("servers %q, want one per StatefulSet pod %q", names, pods)
		}
		if want := []string{"serve", "-config", imageConfigPath(t), "$(POD_NAME)"}; !slices.Equal(c.Args, want) {
			t.Errorf("container args %q, want %q", c.Args, want)
		}
		if ref := c.env("POD_NAME").ValueFrom.FieldRef; ref == nil || ref.FieldPath != "metadata.name" {
			t.Error("POD_NAME does not come from the pod's metadata.name")
		}
	})

	t.Run("configuration mount", func(t *testing.T) {
		dir, file := path.Split(imageConfigPath(t))
		for _, v := range pod.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
				if got := c.mountPath(v.Name); path.Clean(got) != path.Clean(dir) {
					t.Errorf("ConfigMap mounted at %q, want %s", got, dir)
				}
				if _, ok := cm.Data[file]; !ok {
					t.Errorf("ConfigMap has no key %s", file)
				}
				return
			}
		}
		t.Errorf("no volume holds ConfigMap %s", cm.Metadata.Name)
	})

	t.Run("addresses are stable DNS names", func(t *testing.T) {
		if sts.ServiceName != svcObj.Metadata.Name || svc.ClusterIP != "None" {
			t.Errorf("StatefulSet serviceName %q, want the headless Service %s", sts.ServiceName, svcObj.Metadata.Name)
		}
		if !svc.PublishNotReadyAddresses {
			t.Error("Service does not publish not-ready addresses: a starting server could not resolve itself or its peers")
		}
		if !(labelSelector{svc.Selector}).selects(podLabels) {
			t.Errorf("Service selects %v, which the pods %v lack", svc.Selector, podLabels)
		}
		servicePorts := map[int]bool{}
		for _, p := range svc.Ports {
			if p.TargetPort != "" && c.port(p.TargetPort) != p.Port {
				t.Errorf("Service port %d goes to container port %d", p.Port, c.port(p.TargetPort))
			}
			servicePorts[p.Port] = true
		}
		for _, s := range cfg.Servers {
			host, port := splitAddr(t, s.Addr)
			if want := fmt.Sprintf("%s.%s.%s.svc.cluster.local", s.Name, sts.ServiceName, ns); host != want {
				t.Errorf("server %s: host %s, want %s", s.Name, host, want)
			}
			if !c.hasPort(port) {
				t.Errorf("server %s: port %d is not a container port", s.Name, port)
			}
			if !servicePorts[port] {
				t.Errorf("server %s: port %d is not a Service port", s.Name, port)
			}
		}
	})

	// kubectl port-forward connects to the pod's loopback address, which
	// only a server bound to every interface answers on.
	t.Run("port-forward reaches the server", func(t *testing.T) {
		for _, s := range cfg.Servers {
			for field, addr := range map[string]string{"listen": s.ListenAddr(), "admin": s.Admin} {
				host, port := splitAddr(t, addr)
				if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
					t.Errorf("server %s: %s %s binds one interface; want every interface (0.0.0.0)", s.Name, field, addr)
				}
				if !c.hasPort(port) {
					t.Errorf("server %s: %s port %d is not a container port", s.Name, field, port)
				}
			}
		}
	})

	t.Run("client Service", func(t *testing.T) {
		var clients []object
		for _, o := range k["Service"] {
			if o.Metadata.Name != svcObj.Metadata.Name {
				clients = append(clients, o)
			}
		}
		if len(clients) != 1 {
			t.Fatalf("%d Services besides the headless one, want one for clients", len(clients))
		}
		spec := decodeSpec[serviceSpec](t, clients[0])
		if spec.ClusterIP == "None" || spec.PublishNotReadyAddresses {
			t.Errorf("Service %s is headless or sends clients to servers that are not ready", clients[0].Metadata.Name)
		}
		if !(labelSelector{spec.Selector}).selects(podLabels) {
			t.Errorf("Service %s selects %v, which the pods %v lack", clients[0].Metadata.Name, spec.Selector, podLabels)
		}
		_, clientPort := splitAddr(t, cfg.Servers[0].Addr)
		admin := adminPort(t, cfg)
		var ports []int
		for _, p := range spec.Ports {
			if c.port(p.TargetPort) == admin {
				t.Errorf("Service %s exposes the admin port, which shows client locations", clients[0].Metadata.Name)
			}
			if c.port(p.TargetPort) == clientPort {
				ports = append(ports, p.Port)
			}
		}
		if len(ports) != 1 {
			t.Errorf("Service %s: %d ports go to the client port %d, want 1", clients[0].Metadata.Name, len(ports), clientPort)
		}
	})

	t.Run("disruption budget", func(t *testing.T) {
		pdb := decodeSpec[podDisruptionBudgetSpec](t, k.one(t, "PodDisruptionBudget"))
		if !pdb.Selector.selects(podLabels) {
			t.Errorf("PodDisruptionBudget selects %v, which the pods %v lack", pdb.Selector.MatchLabels, podLabels)
		}
		if pdb.MaxUnavailable == nil || *pdb.MaxUnavailable != 1 || pdb.MinAvailable != nil {
			t.Error("PodDisruptionBudget does not set maxUnavailable: 1 (one server down at a time)")
		}
	})

	t.Run("servers spread over nodes", func(t *testing.T) {
		anti := pod.Affinity.PodAntiAffinity
		terms := anti.Required
		for _, p := range anti.Preferred {
			terms = append(terms, p.PodAffinityTerm)
		}
		if !slices.ContainsFunc(terms, func(term podAffinityTerm) bool {
			return term.TopologyKey == "kubernetes.io/hostname" && term.LabelSelector.selects(podLabels)
		}) {
			t.Error("no pod anti-affinity by kubernetes.io/hostname that selects the herd's pods")
		}
	})

	t.Run("probes and metrics on the admin port", func(t *testing.T) {
		admin := adminPort(t, cfg)
		for _, tc := range []struct {
			name     string
			p        *probe
			path     string
			optional bool
		}{
			{"startup", c.StartupProbe, "/healthz", true},
			{"liveness", c.LivenessProbe, "/healthz", false},
			{"readiness", c.ReadinessProbe, "/readyz", false},
		} {
			if tc.p == nil && tc.optional {
				continue
			}
			if tc.p == nil || tc.p.HTTPGet == nil {
				t.Errorf("no %s probe over HTTP", tc.name)
				continue
			}
			if got := tc.p.HTTPGet; got.Path != tc.path || c.port(got.Port) != admin {
				t.Errorf("%s probe GET %s on port %s, want %s on %d", tc.name, got.Path, got.Port, tc.path, admin)
			}
		}
		want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(admin), "prometheus.io/path": "/metrics"}
		for k, v := range want {
			if got := sts.Template.Metadata.Annotations[k]; got != v {
				t.Errorf("pod annotation %s: %q, want %q", k, got, v)
			}
		}
	})

	t.Run("peer secret", func(t *testing.T) {
		if _, ok := secret.StringData[config.EnvPeerSecret]; !ok {
			t.Errorf("Secret %s has no key %s", secret.Metadata.Name, config.EnvPeerSecret)
		}
		ref := c.env(config.EnvPeerSecret).ValueFrom.SecretKeyRef
		if ref == nil || ref.Name != secret.Metadata.Name || ref.Key != config.EnvPeerSecret || ref.Optional {
			t.Errorf("%s does not come from key %[1]s of Secret %s, required", config.EnvPeerSecret, secret.Metadata.Name)
		}
	})

	t.Run("data volume", func(t *testing.T) {
		if len(sts.VolumeClaimTemplates) != 1 {
			t.Fatalf("%d volume claim templates, want 1", len(sts.VolumeClaimTemplates))
		}
		if got := c.mountPath(sts.VolumeClaimTemplates[0].Metadata.Name); got != cfg.DataDir {
			t.Errorf("claim mounted at %q, want data_dir %s", got, cfg.DataDir)
		}
	})

	t.Run("non-root", func(t *testing.T) {
		nonRoot := func(sc securityContext) bool { return sc.RunAsNonRoot != nil && *sc.RunAsNonRoot }
		if !nonRoot(pod.SecurityContext) && !nonRoot(c.SecurityContext) {
			t.Error("runAsNonRoot is not set")
		}
		for _, sc := range []securityContext{pod.SecurityContext, c.SecurityContext} {
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Error("runAsUser is root")
			}
		}
	})
}

// TestKustomization checks that kubectl apply -k deploy/k8s applies every
// manifest but the Secret, whose placeholder must not reach a cluster.
func TestKustomization(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "deploy/k8s/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && name != "secret.yaml" {
			want = append(want, name)
		}
	}
	got := slices.Sorted(slices.Values(readKubernetes(t).one(t, "Kustomization").Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %q, want %q", got, want)
	}
}
