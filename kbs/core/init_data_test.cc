#include "kbs/core/init_data.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A CoCo init-data document in the shape the guest-components use.
constexpr char kInitData[] = R"(version = "0.1.0"
algorithm = "sha256"
[data]
"aa.toml" = '''
[token_configs]
[token_configs.kbs]
url = "http://kbs:8080"
'''
"policy.rego" = '''
package agent_policy
default AllowRequestsFailingPolicy := true
'''
)";

// A pod's init-data as a CoCo deployment writes it: attestation-agent and
// confidential-data-hub configuration, and a Kata agent policy in the shape
// genpolicy generates (rules, then `policy_data := {...}`; here more rules
// follow it). containers[0] is the pause container; the workloads are pinned
// by digest, by tag and digest, and by tag only, and db-migrate reuses the
// frontend image.
constexpr char kPodInitData[] = R"toml(version = "0.1.0"
algorithm = "sha256"

[data]
"aa.toml" = '''
[token_configs]
[token_configs.coco_as]
url = "http://kbs.trustee-operator-system.svc.cluster.local:8080"

[token_configs.kbs]
url = "http://kbs.trustee-operator-system.svc.cluster.local:8080"
'''

"cdh.toml" = '''
socket = 'unix:///run/confidential-containers/cdh.sock'
credentials = []

[kbc]
name = "cc_kbc"
url = "http://kbs.trustee-operator-system.svc.cluster.local:8080"

[image]
image_security_policy_uri = "kbs:///default/security-policy/shop"
'''

"policy.rego" = '''
package agent_policy

import future.keywords.in
import future.keywords.every

default AddARPNeighborsRequest := false
default CloseStdinRequest := false
default CopyFileRequest := false
default CreateContainerRequest := false
default CreateSandboxRequest := false
default DestroySandboxRequest := true
default ExecProcessRequest := false
default GetOOMEventRequest := true
default GuestDetailsRequest := true
default OnlineCPUMemRequest := true
default PullImageRequest := true
default ReadStreamRequest := false
default RemoveContainerRequest := true
default SignalProcessRequest := true
default StartContainerRequest := true
default StatsContainerRequest := true
default UpdateInterfaceRequest := true
default UpdateRoutesRequest := true
default WaitProcessRequest := true
default WriteStreamRequest := false
default AllowRequestsFailingPolicy := false

S_NAMESPACE_KEY = "io.kubernetes.cri.sandbox-namespace"

CreateContainerRequest {
    some p_container in policy_data.containers
    p_oci := p_container.OCI
    i_oci := input.OCI

    p_oci.Version == i_oci.Version
    p_oci.Root.Readonly == i_oci.Root.Readonly
    p_oci.Annotations[S_NAMESPACE_KEY] == i_oci.Annotations[S_NAMESPACE_KEY]
    same_container_type(p_oci, i_oci)
    same_image(p_oci, i_oci)
}

policy_data := {
  "containers": [
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 65535, "GID": 65535, "AdditionalGids": [], "Username": ""},
          "Args": ["/pause"],
          "Cwd": "/",
          "Capabilities": {
            "Ambient": [],
            "Bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
            "Effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
            "Inheritable": [],
            "Permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
          },
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": true},
        "Mounts": [
          {"destination": "/proc", "source": "proc", "type_": "proc", "options": ["nosuid", "noexec", "nodev"]},
          {"destination": "/dev", "source": "tmpfs", "type_": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
          {"destination": "/dev/shm", "source": "/run/kata-containers/sandbox/shm", "type_": "bind", "options": ["rbind"]},
          {"destination": "/etc/resolv.conf", "source": "", "type_": "bind", "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}
        ],
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_sandbox",
          "io.kubernetes.cri.container-type": "sandbox",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-log-directory": "^/var/log/pods/$(sandbox-namespace)_$(sandbox-name)_[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default",
          "nerdctl/network-namespace": "^/var/run/netns/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
          "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
          "Devices": []
        }
      },
      "storages": [],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    },
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 101, "GID": 101, "AdditionalGids": [101], "Username": ""},
          "Args": ["node", "server.js", "--port=8080"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$(host-name)", "NODE_ENV=production", "ORDERS_URL=http://127.0.0.1:9090"],
          "Cwd": "/app",
          "Capabilities": {"Ambient": [], "Bounding": ["CAP_NET_BIND_SERVICE"], "Effective": ["CAP_NET_BIND_SERVICE"], "Inheritable": [], "Permitted": ["CAP_NET_BIND_SERVICE"]},
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": true},
        "Mounts": [
          {"destination": "/proc", "source": "proc", "type_": "proc", "options": ["nosuid", "noexec", "nodev"]},
          {"destination": "/sys/fs/cgroup", "source": "cgroup", "type_": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
          {"destination": "/etc/hosts", "source": "$(sfprefix)hosts$", "type_": "bind", "options": ["rbind", "rprivate", "rw"]},
          {"destination": "/var/run/secrets/kubernetes.io/serviceaccount", "source": "$(sfprefix)serviceaccount$", "type_": "bind", "options": ["rbind", "rprivate", "ro"]}
        ],
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_container",
          "io.kubernetes.cri.container-name": "frontend",
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.image-name": "ghcr.io/confidential-demo/shop-frontend@sha256:1cf387c012cd2d02f1923e589f86df4a4802427057dbc90f47b87f04d29d54bc",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
          "ReadonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
          "Devices": []
        }
      },
      "storages": [
        {"driver": "image_guest_pull", "driver_options": ["image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":\"container\"}}"], "source": "$(image-name)", "fstype": "overlay", "options": [], "mount_point": "$(cpath)/$(bundle-id)", "fs_group": null}
      ],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    },
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 1000, "GID": 1000, "AdditionalGids": [1000], "Username": ""},
          "Args": ["/usr/local/bin/orders-api", "--listen=127.0.0.1:9090"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$(host-name)", "RUST_LOG=info"],
          "Cwd": "/",
          "Capabilities": {"Ambient": [], "Bounding": [], "Effective": [], "Inheritable": [], "Permitted": []},
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": false},
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_container",
          "io.kubernetes.cri.container-name": "orders-api",
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.image-name": "registry.example.com:5000/shop/orders-api:2.4.1@sha256:14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
          "ReadonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
          "Devices": []
        }
      },
      "storages": [],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    },
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 101, "GID": 101, "AdditionalGids": [101], "Username": ""},
          "Args": ["nginx", "-g", "daemon off;"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$(host-name)", "NGINX_VERSION=1.25.5"],
          "Cwd": "/",
          "Capabilities": {"Ambient": [], "Bounding": ["CAP_NET_BIND_SERVICE"], "Effective": ["CAP_NET_BIND_SERVICE"], "Inheritable": [], "Permitted": ["CAP_NET_BIND_SERVICE"]},
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": false},
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_container",
          "io.kubernetes.cri.container-name": "tls-proxy",
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": [],
          "ReadonlyPaths": [],
          "Devices": []
        }
      },
      "storages": [],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    },
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 0, "GID": 0, "AdditionalGids": [0], "Username": ""},
          "Args": ["/fluent-bit/bin/fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$(host-name)"],
          "Cwd": "/",
          "Capabilities": {"Ambient": [], "Bounding": [], "Effective": [], "Inheritable": [], "Permitted": []},
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": true},
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_container",
          "io.kubernetes.cri.container-name": "log-shipper",
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.image-name": "quay.io/confidential-demo/fluent-bit@sha256:cebbec9619efd343f95818dc41e3080b1bea850f896445e245e10ad415bb81e6",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": [],
          "ReadonlyPaths": [],
          "Devices": []
        }
      },
      "storages": [],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    },
    {
      "OCI": {
        "Version": "1.1.0",
        "Process": {
          "Terminal": false,
          "User": {"UID": 101, "GID": 101, "AdditionalGids": [101], "Username": ""},
          "Args": ["node", "migrate.js"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=$(host-name)"],
          "Cwd": "/app",
          "Capabilities": {"Ambient": [], "Bounding": [], "Effective": [], "Inheritable": [], "Permitted": []},
          "NoNewPrivileges": true
        },
        "Root": {"Path": "$(cpath)/$(bundle-id)/rootfs", "Readonly": true},
        "Annotations": {
          "io.katacontainers.pkg.oci.bundle_path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$(bundle-id)",
          "io.katacontainers.pkg.oci.container_type": "pod_container",
          "io.kubernetes.cri.container-name": "db-migrate",
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.image-name": "ghcr.io/confidential-demo/shop-frontend@sha256:1cf387c012cd2d02f1923e589f86df4a4802427057dbc90f47b87f04d29d54bc",
          "io.kubernetes.cri.sandbox-id": "^[a-z0-9]{64}$",
          "io.kubernetes.cri.sandbox-name": "shop",
          "io.kubernetes.cri.sandbox-namespace": "default"
        },
        "Linux": {
          "Namespaces": [{"Type": "ipc", "Path": ""}, {"Type": "uts", "Path": ""}, {"Type": "mount", "Path": ""}],
          "MaskedPaths": [],
          "ReadonlyPaths": [],
          "Devices": []
        }
      },
      "storages": [],
      "devices": [],
      "sandbox_pidns": false,
      "exec_commands": []
    }
  ],
  "common": {
    "cpath": "/run/kata-containers/shared/containers",
    "mount_source_cpath": "/run/kata-containers/shared/containers",
    "sfprefix": "^$(cpath)/$(bundle-id)-[a-z0-9]{16}-",
    "ipv4_a": "((25[0-5]|(2[0-4]|1\\d|[1-9]|)\\d)\\.?\\b){4}",
    "ip_p": "[0-9]{1,5}",
    "svc_name": "[A-Z_\\.\\-]+",
    "dns_label": "[a-zA-Z0-9_\\.\\-]+"
  },
  "sandbox": {
    "storages": [
      {"driver": "ephemeral", "driver_options": [], "source": "shm", "fstype": "tmpfs", "options": ["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"], "mount_point": "/run/kata-containers/sandbox/shm", "fs_group": null}
    ]
  },
  "request_defaults": {
    "CreateContainerRequest": {"allow_env_regex": ["^HOSTNAME=$(dns_label)$", "^$(svc_name)_SERVICE_HOST=$(ipv4_a)$"]},
    "CopyFileRequest": ["$(sfprefix)"],
    "ExecProcessRequest": {"allowed_commands": [], "regex": []},
    "CloseStdinRequest": false,
    "ReadStreamRequest": false,
    "UpdateEphemeralMountsRequest": false,
    "WriteStreamRequest": false
  }
}

same_container_type(p_oci, i_oci) {
    key := "io.kubernetes.cri.container-type"
    p_oci.Annotations[key] == i_oci.Annotations[key]
}

same_image(p_oci, i_oci) {
    p_oci.Annotations["io.kubernetes.cri.container-type"] == "sandbox"
}

same_image(p_oci, i_oci) {
    key := "io.kubernetes.cri.image-name"
    p_oci.Annotations[key] == i_oci.Annotations[key]
}
'''
)toml";

constexpr char kFrontend[] =
    "ghcr.io/confidential-demo/shop-frontend@sha256:"
    "1cf387c012cd2d02f1923e589f86df4a4802427057dbc90f47b87f04d29d54bc";
constexpr char kOrdersApi[] =
    "registry.example.com:5000/shop/orders-api:2.4.1@sha256:"
    "14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479";
constexpr char kNginx[] = "docker.io/library/nginx:1.25";
constexpr char kFluentBit[] =
    "quay.io/confidential-demo/fluent-bit@sha256:"
    "cebbec9619efd343f95818dc41e3080b1bea850f896445e245e10ad415bb81e6";
constexpr char kHex[] = "6210c0bf05396716df932f0729df69de0533933e5ad9871fd07b61811c4c28df";

// An init-data document whose agent policy has `policy_data := <json>`.
std::string WithPolicyData(absl::string_view policy_data) {
  return absl::StrCat(R"(version = "0.1.0"
algorithm = "sha256"
[data]
"policy.rego" = '''
package agent_policy

default CreateContainerRequest := false

policy_data := )",
                      policy_data, R"(

CreateContainerRequest {
    some p_container in policy_data.containers
}
'''
)");
}

// A policy_data.containers entry with these OCI annotations (a JSON object).
std::string Container(absl::string_view annotations) {
  return absl::StrCat(R"({"OCI": {"Version": "1.1.0", "Annotations": )", annotations,
                      R"(}, "storages": [], "exec_commands": []})");
}

std::string Workload(absl::string_view image) {
  return Container(absl::StrCat(R"({"io.kubernetes.cri.container-type": "container", )",
                                R"("io.kubernetes.cri.image-name": ")", image, R"("})"));
}

constexpr char kPause[] = R"({"io.kubernetes.cri.container-type": "sandbox"})";

std::vector<std::string> References(const InitData& init_data) {
  std::vector<std::string> out;
  for (const ContainerImage& image : init_data.images) out.push_back(image.reference);
  return out;
}

TEST(InitDataTest, DigestIsOverRawBytesWithDeclaredAlgorithm) {
  auto parsed = ParseInitData("toml", kInitData);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->algorithm, common::HashAlgorithm::kSha256);
  EXPECT_EQ(parsed->version, "0.1.0");
  EXPECT_EQ(parsed->digest, common::Sha256(kInitData));
  EXPECT_THAT(parsed->claims["aa.toml"].get<std::string>(), HasSubstr("http://kbs:8080"));
  EXPECT_TRUE(parsed->claims.contains("policy.rego"));
}

TEST(InitDataTest, LargeEntriesAreSummarized) {
  std::string big(5000, 'a');
  std::string doc = "algorithm = \"sha512\"\n[data]\nbig = \"" + big + "\"\n";
  auto parsed = ParseInitData("toml", doc);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->digest.size(), 64u);
  EXPECT_EQ(parsed->claims["big"]["bytes"], 5000);
  EXPECT_EQ(parsed->claims["big"]["sha256"], common::HexEncode(common::Sha256(big)));
}

TEST(InitDataTest, RejectsBadDocuments) {
  EXPECT_THAT(ParseInitData("json", "{}").status().message(), HasSubstr("only toml"));
  EXPECT_THAT(ParseInitData("toml", "algorithm = ").status().message(), HasSubstr("line 1"));
  EXPECT_THAT(ParseInitData("toml", "version = \"0.1.0\"").status().message(),
              HasSubstr("algorithm"));
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sm3\"").ok());
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sha256\"\ndata = 1").ok());
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sha256\"\n[data]\nx = 1").ok());
}

TEST(InitDataTest, ExtractsWorkloadImagesFromAgentPolicy) {
  auto parsed = ParseInitData("toml", kPodInitData);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->has_agent_policy);
  // Six containers: the pause container is left out and db-migrate repeats
  // the frontend image.
  EXPECT_THAT(References(*parsed), ElementsAre(kFrontend, kOrdersApi, kNginx, kFluentBit));
  ASSERT_EQ(parsed->images.size(), 4u);

  const ContainerImage& frontend = parsed->images[0];
  EXPECT_EQ(frontend.name, "ghcr.io/confidential-demo/shop-frontend");
  EXPECT_EQ(frontend.digest,
            "sha256:1cf387c012cd2d02f1923e589f86df4a4802427057dbc90f47b87f04d29d54bc");
  EXPECT_EQ(frontend.note, "");

  const ContainerImage& orders = parsed->images[1];  // tag and digest, registry port
  EXPECT_EQ(orders.name, "registry.example.com:5000/shop/orders-api");
  EXPECT_EQ(orders.digest,
            "sha256:14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479");

  const ContainerImage& nginx = parsed->images[2];  // tag only
  EXPECT_EQ(nginx.name, "docker.io/library/nginx");
  EXPECT_EQ(nginx.digest, std::nullopt);
  EXPECT_THAT(nginx.note, HasSubstr("tag only"));

  EXPECT_EQ(parsed->images[3].name, "quay.io/confidential-demo/fluent-bit");
  EXPECT_TRUE(parsed->images[3].digest.has_value());

  // The other entries are unchanged; the large policy is summarized.
  EXPECT_THAT(parsed->claims["aa.toml"].get<std::string>(), HasSubstr("trustee-operator-system"));
  EXPECT_THAT(parsed->claims["cdh.toml"].get<std::string>(), HasSubstr("cc_kbc"));
  EXPECT_GT(parsed->claims["policy.rego"]["bytes"].get<size_t>(), kMaxInlineInitDataEntry);
}

TEST(InitDataTest, DigestIsOverRawBytesOfDocumentWithAgentPolicy) {
  auto parsed = ParseInitData("toml", kPodInitData);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->digest, common::Sha256(kPodInitData));
  // The same document with CRLF line ends: same images, other digest.
  std::string crlf = absl::StrReplaceAll(kPodInitData, {{"\n", "\r\n"}});
  auto parsed_crlf = ParseInitData("toml", crlf);
  ASSERT_TRUE(parsed_crlf.ok()) << parsed_crlf.status();
  EXPECT_EQ(parsed_crlf->digest, common::Sha256(crlf));
  EXPECT_NE(parsed_crlf->digest, parsed->digest);
  EXPECT_EQ(References(*parsed_crlf), References(*parsed));
}

TEST(InitDataTest, SandboxContainerIsSkippedEvenWithAnImageName) {
  // rules.rego lets a `sandbox` entry admit only the pause container.
  std::string pause_with_image = Container(R"({"io.kubernetes.cri.container-type": "sandbox",
                    "io.kubernetes.cri.image-name": "registry.k8s.io/pause:3.9"})");
  auto parsed =
      ParseInitData("toml", WithPolicyData(absl::StrCat(R"({"containers": [)", pause_with_image,
                                                        ",", Workload("nginx:1.25"), "]}")));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(References(*parsed), ElementsAre("nginx:1.25"));

  // Only the exact value "sandbox" counts.
  auto not_sandbox = ParseInitData(
      "toml",
      WithPolicyData(absl::StrCat(R"({"containers": [)",
                                  Container(R"({"io.kubernetes.cri.container-type": "Sandbox",
                                "io.kubernetes.cri.image-name": "evil:1"})"),
                                  "]}")));
  ASSERT_TRUE(not_sandbox.ok()) << not_sandbox.status();
  EXPECT_THAT(References(*not_sandbox), ElementsAre("evil:1"));
}

TEST(InitDataTest, WorkloadWithoutImageNameGivesAnEmptyEntry) {
  std::string no_image = Container(R"({"io.kubernetes.cri.container-type": "container"})");
  std::string no_oci = R"({"storages": []})";
  auto parsed = ParseInitData(
      "toml", WithPolicyData(absl::StrCat(R"({"containers": [)", Container(kPause), ",", no_image,
                                          ",", Workload(kFrontend), ",", no_oci, "]}")));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // The two containers without an image name share one empty entry.
  ASSERT_EQ(parsed->images.size(), 2u);
  EXPECT_EQ(parsed->images[0].reference, "");
  EXPECT_EQ(parsed->images[0].name, "");
  EXPECT_EQ(parsed->images[0].digest, std::nullopt);
  EXPECT_THAT(parsed->images[0].note, HasSubstr("io.kubernetes.cri.image-name"));
  EXPECT_EQ(parsed->images[1].reference, kFrontend);
}

TEST(InitDataTest, MalformedDigestIsKeptAsNameWithNote) {
  auto parsed = ParseInitData(
      "toml", WithPolicyData(absl::StrCat(
                  R"({"containers": [)", Workload("ghcr.io/acme/app@sha256:xyz"), ",",
                  Workload(absl::StrCat("ghcr.io/acme/db@sha512:", kHex, kHex)), "]}")));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->images.size(), 2u);
  EXPECT_EQ(parsed->images[0].name, "ghcr.io/acme/app");
  EXPECT_EQ(parsed->images[0].digest, std::nullopt);
  EXPECT_THAT(parsed->images[0].note, HasSubstr("3 characters"));
  EXPECT_EQ(parsed->images[1].name, "ghcr.io/acme/db");
  EXPECT_EQ(parsed->images[1].digest, std::nullopt);
  EXPECT_THAT(parsed->images[1].note, HasSubstr("\"sha512\" is not sha256"));
}

TEST(InitDataTest, ParseImageReference) {
  struct Case {
    std::string reference;
    std::string name;
    std::optional<std::string> digest;
    std::string note;  // a substring of the expected note; "" for none
  };
  const std::string digest = absl::StrCat("sha256:", kHex);
  const std::vector<Case> cases = {
      {absl::StrCat("nginx@", digest), "nginx", digest, ""},
      {absl::StrCat("nginx:1.25@", digest), "nginx", digest, ""},
      {absl::StrCat("localhost:5000/a/b:v1@", digest), "localhost:5000/a/b", digest, ""},
      {"nginx:1.25", "nginx", std::nullopt, "tag only"},
      {"docker.io/library/nginx", "docker.io/library/nginx", std::nullopt, "tag only"},
      {"localhost:5000/app", "localhost:5000/app", std::nullopt, "tag only"},
      {"nginx@sha256:xyz", "nginx", std::nullopt, "3 characters"},
      {absl::StrCat("nginx@sha256:", kHex, "0"), "nginx", std::nullopt, "65 characters"},
      {absl::StrCat("nginx@sha256:", absl::AsciiStrToUpper(kHex)), "nginx", std::nullopt,
       "lowercase hex"},
      {absl::StrCat("nginx@sha256:", std::string(63, 'a'), "g"), "nginx", std::nullopt,
       "lowercase hex"},
      {absl::StrCat("nginx@sha512:", kHex, kHex), "nginx", std::nullopt, "is not sha256"},
      {absl::StrCat("nginx@", kHex), "nginx", std::nullopt, "no algorithm"},
      {absl::StrCat("a@b@", digest), "a", std::nullopt, "is not sha256"},
      {absl::StrCat("@", digest), "", std::nullopt, "no repository name"},
      {"", "", std::nullopt, "empty"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reference);
    ContainerImage image = ParseImageReference(c.reference);
    EXPECT_EQ(image.reference, c.reference);
    EXPECT_EQ(image.name, c.name);
    EXPECT_EQ(image.digest, c.digest);
    if (c.note.empty()) {
      EXPECT_EQ(image.note, "");
    } else {
      EXPECT_THAT(image.note, HasSubstr(c.note));
    }
  }
}

TEST(InitDataTest, ImagesToJsonOmitsAbsentDigest) {
  std::vector<ContainerImage> images = {ParseImageReference(kOrdersApi),
                                        ParseImageReference(kNginx)};
  common::Json expected = common::Json::parse(absl::StrCat(R"([{"reference": ")", kOrdersApi, R"(",
           "name": "registry.example.com:5000/shop/orders-api",
           "digest": "sha256:14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479"},
          {"reference": "docker.io/library/nginx:1.25", "name": "docker.io/library/nginx"}])"));
  EXPECT_EQ(ImagesToJson(images), expected);
  EXPECT_EQ(ImagesToJson({}), common::Json::array());
}

TEST(InitDataTest, PolicyRegoWithoutPolicyDataHasNoImages) {
  auto parsed = ParseInitData("toml", kInitData);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->has_agent_policy);
  EXPECT_THAT(parsed->images, IsEmpty());

  // Only a line that starts `policy_data := {` holds the JSON.
  constexpr char kNotAtLineStart[] = R"(algorithm = "sha256"
[data]
"policy.rego" = '''
package agent_policy
# policy_data := {"containers": [}
  policy_data := {"containers": [}
policy_data_v2 := {"containers": [}
policy_data := json.unmarshal(`{"containers": []}`)
'''
)";
  auto indirect = ParseInitData("toml", kNotAtLineStart);
  ASSERT_TRUE(indirect.ok()) << indirect.status();
  EXPECT_FALSE(indirect->has_agent_policy);

  // No policy.rego at all.
  auto none = ParseInitData("toml", "algorithm = \"sha256\"\n[data]\n\"aa.toml\" = \"x\"\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_agent_policy);
}

TEST(InitDataTest, PolicyDataWithoutContainersHasNoImages) {
  // The shape of an exec-only policy: it restricts commands, not images.
  auto parsed = ParseInitData("toml", WithPolicyData(R"({
  "allowed_commands": ["curl -s http://127.0.0.1:8006/cdh/resource/default/status/ready"]
})"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->has_agent_policy);
  EXPECT_THAT(parsed->images, IsEmpty());
}

TEST(InitDataTest, BrokenPolicyDataIsRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"containers": [)", "invalid JSON"},  // unterminated
      {R"({"containers": [],})", "invalid JSON"},
      {R"({"containers": [} ])", "invalid JSON"},
      {R"({"containers": {"pause": {}}})", "`containers` must be an array, not object"},
      {R"({"containers": ["pause"]})", "containers[0] must be an object"},
      {R"({"containers": [{"OCI": []}]})", "containers[0].OCI must be an object"},
      {R"({"containers": [{"OCI": {"Annotations": "x"}}]})",
       "containers[0].OCI.Annotations must be an object"},
      {absl::StrCat(R"({"containers": [)", Container(kPause), ",",
                    Container(R"({"io.kubernetes.cri.image-name": 42})"), "]}"),
       R"(containers[1].OCI.Annotations["io.kubernetes.cri.image-name"] must be a string)"},
      {absl::StrCat(R"({"containers": [)",
                    Container(R"({"io.kubernetes.cri.container-type": ["sandbox"]})"), "]}"),
       R"(["io.kubernetes.cri.container-type"] must be a string)"},
      {absl::StrCat(R"({"containers": [], "x": )", std::string(70, '['), std::string(70, ']'), "}"),
       "nesting"},
  };
  for (const auto& [policy_data, message] : cases) {
    SCOPED_TRACE(policy_data.substr(0, 80));
    auto parsed = ParseInitData("toml", WithPolicyData(policy_data));
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("init-data: policy.rego policy_data: "));
    EXPECT_THAT(parsed.status().message(), HasSubstr(message));
  }
}

TEST(InitDataTest, DuplicateMembersInPolicyDataAreRejected) {
  // Two image names for one container: a parser keeping the first and one
  // keeping the last would see different images.
  std::string two_names =
      Container(absl::StrCat(R"({"io.kubernetes.cri.image-name": "ghcr.io/acme/app@sha256:)", kHex,
                             R"(", "io.kubernetes.cri.image-name": "ghcr.io/evil/app:latest"})"));
  auto parsed =
      ParseInitData("toml", WithPolicyData(absl::StrCat(R"({"containers": [)", two_names, "]}")));
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("duplicate member \"io.kubernetes.cri.image-name\""));

  auto two_lists = ParseInitData("toml", WithPolicyData(R"({"containers": [], "containers": []})"));
  ASSERT_FALSE(two_lists.ok());
  EXPECT_THAT(two_lists.status().message(), HasSubstr("duplicate member \"containers\""));
}

TEST(InitDataTest, PolicyDataDefinedTwiceIsRejected) {
  std::string doc = WithPolicyData(absl::StrCat(R"({"containers": [)", Workload(kFrontend),
                                                "]}\npolicy_data := {\"containers\": []}"));
  auto parsed = ParseInitData("toml", doc);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("defined more than once"));
  // A decoy at a line start (e.g. inside a raw string) beside the real,
  // indented or `=` definition the agent would enforce: rejected too.
  for (const char* second :
       {"\n  policy_data := {\"containers\": []}", "\npolicy_data = {\"containers\": []}",
        "\nx := `\npolicy_data:={}`"}) {
    std::string decoy =
        WithPolicyData(absl::StrCat(R"({"containers": [)", Workload(kFrontend), "]}", second));
    auto twice = ParseInitData("toml", decoy);
    ASSERT_FALSE(twice.ok()) << second;
    EXPECT_THAT(twice.status().message(), HasSubstr("defined more than once"));
  }
  // References to policy_data are not definitions.
  std::string uses = WithPolicyData(
      absl::StrCat(R"({"containers": [)", Workload(kFrontend),
                   "]}\nallowed if { policy_data.containers[0] == input; policy_data == x }"));
  EXPECT_TRUE(ParseInitData("toml", uses).ok());
}

TEST(InitDataTest, AgentPolicyRulesDigestLeavesOutTheData) {
  std::string a = WithPolicyData(absl::StrCat(R"({"containers": [)", Workload(kFrontend), "]}"));
  std::string b = WithPolicyData(absl::StrCat(R"({"containers": [)", Workload(kNginx), "]}"));
  auto pa = ParseInitData("toml", a);
  auto pb = ParseInitData("toml", b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->agent_policy_rules_digest.size(), 32u);
  // Same rules, different data: same rules digest, different images.
  EXPECT_EQ(pa->agent_policy_rules_digest, pb->agent_policy_rules_digest);
  EXPECT_NE(References(*pa), References(*pb));
  // Different rules: a different digest.
  auto pc = ParseInitData("toml", absl::StrReplaceAll(a, {{"package agent_policy", "package p2"}}));
  ASSERT_TRUE(pc.ok()) << pc.status();
  EXPECT_NE(pa->agent_policy_rules_digest, pc->agent_policy_rules_digest);
}

TEST(InitDataTest, TooManyContainersAreRejected) {
  auto policy_data = [](size_t count) {
    std::string containers;
    for (size_t i = 0; i < count; ++i) {
      absl::StrAppend(&containers, i == 0 ? "" : ",", Workload(absl::StrCat("app-", i, ":1")));
    }
    return absl::StrCat(R"({"containers": [)", containers, "]}");
  };
  auto at_limit = ParseInitData("toml", WithPolicyData(policy_data(kMaxAgentPolicyContainers)));
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->images.size(), kMaxAgentPolicyContainers);

  auto over = ParseInitData("toml", WithPolicyData(policy_data(kMaxAgentPolicyContainers + 1)));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.status().message(), HasSubstr("257 containers"));
}

}  // namespace
}  // namespace kbs
