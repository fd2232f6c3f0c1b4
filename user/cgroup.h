// Cgroup (v2) attribution: cgroup id -> path, and the container id a path
// names in the well-known layouts (Docker, containerd, CRI-O, Podman,
// Kubernetes pods).
//
// A cgroup's id (what the kernel records: kernfs_node.id, as
// bpf_get_current_cgroup_id() returns) is the inode number of its directory
// on the cgroup2 file system (64-bit kernels), so the tree is mapped with
// stat(). Paths are relative to the cgroup2 root, as in /proc/PID/cgroup
// ("/system.slice/ssh.service"; the root is "/").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tcptrail {

// What a cgroup path says about containers. Fields are empty when the path
// names none.
struct ContainerRef {
  std::string id;      // the container id (64 hex digits in these layouts)
  std::string runtime; // "docker", "containerd", "crio", "podman"
  std::string pod_uid; // Kubernetes pod UID (dashes), for pods' cgroups
};

// Parses a cgroup path (relative to the cgroup2 root, or an absolute file
// system path under it). The innermost container component wins: e.g.
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/
// cri-containerd-<64 hex>.scope" gives id <64 hex>, runtime containerd,
// pod_uid "12-34". Pure; no file system access.
ContainerRef parse_container(std::string_view path);

// One cgroup as user space shows it.
struct CgroupInfo {
  std::string path; // relative to the cgroup2 root
  ContainerRef container;
};

// Cgroup id -> CgroupInfo lookups, for formatters and user-side filters.
class CgroupNames {
public:
  virtual ~CgroupNames() = default;
  // nullptr when the id is unknown (0, a cgroup removed, or not found).
  virtual const CgroupInfo *find(std::uint64_t id) = 0;
};

// A fixed table (tests; replaying recorded events).
class StaticCgroupNames final : public CgroupNames {
public:
  void add(std::uint64_t id, std::string path);
  const CgroupInfo *find(std::uint64_t id) override;

private:
  std::unordered_map<std::uint64_t, CgroupInfo> table_;
};

// The cgroup2 mount point from a /proc/self/mountinfo text; empty when none.
std::string cgroup2_mount_from_mountinfo(std::string_view mountinfo);

// Whether `path` is `ancestor` or below it (both relative to the root).
bool cgroup_path_under(std::string_view path, std::string_view ancestor);

// The live cgroup2 tree. Walked once at start; an unknown id walks it again
// (at most once per second, so that a stream of unknown ids costs little).
// Holds at most max_entries cgroups; beyond that, misses stay misses.
class CgroupTree final : public CgroupNames {
public:
  static constexpr std::size_t kDefaultMaxEntries = 65536;

  // Finds the cgroup2 mount (/proc/self/mountinfo) and walks it; nullptr
  // when no cgroup2 file system is mounted.
  static std::unique_ptr<CgroupTree>
  open(std::size_t max_entries = kDefaultMaxEntries);
  // A tree rooted at `mount` (tests: any directory works).
  CgroupTree(std::string mount, std::size_t max_entries);

  const std::string &mount() const { return mount_; }
  const CgroupInfo *find(std::uint64_t id) override;

  struct Resolved {
    std::uint64_t id = 0;
    std::uint32_t level = 0; // depth below the root (root: 0)
    std::string path;        // relative to the root
  };
  // A user's cgroup argument: a path relative to the root
  // ("/system.slice/x.service", as /proc/PID/cgroup shows it) or a file
  // system path under the mount. nullopt if it is no cgroup directory.
  std::optional<Resolved> resolve(std::string_view arg) const;

  // The cgroups whose container id starts with `prefix` (the outermost one
  // per container: Podman's "libpod-<id>.scope/container" is the same one).
  std::vector<Resolved> containers_matching(std::string_view prefix);

  std::size_t size() const { return by_id_.size(); }

private:
  void walk();

  std::string mount_;
  std::size_t max_entries_;
  std::unordered_map<std::uint64_t, CgroupInfo> by_id_;
  std::chrono::steady_clock::time_point last_walk_{};
  bool walked_ = false;
};

// The process's CgroupTree, opened on first use; nullptr without cgroup2.
std::shared_ptr<CgroupTree> cgroup_tree();

} // namespace tcptrail
