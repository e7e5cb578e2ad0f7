package deploytest

import (
	"fmt"
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
	SecurityContext securityContext `yaml:"securityContext"`
	Containers      []container     `yaml:"containers"`
	Volumes         []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
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
	cm, secret, svcObj, stsObj := k.one(t, "ConfigMap"), k.one(t, "Secret"), k.one(t, "Service"), k.one(t, "StatefulSet")
	sts := decodeSpec[statefulSetSpec](t, stsObj)
	svc := decodeSpec[serviceSpec](t, svcObj)
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
		if len(svc.Selector) == 0 {
			t.Error("Service selects no pods")
		}
		for k, v := range svc.Selector {
			if sts.Template.Metadata.Labels[k] != v {
				t.Errorf("Service selects %s=%s, which the pods lack", k, v)
			}
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
