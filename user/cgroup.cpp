#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace tcptrail {

namespace {

constexpr std::size_t kContainerIdLen = 64;
constexpr std::size_t kPodUidLen = 36;
// Deeper trees are not walked further (the kernel's default limit is far
// above anything real; this bounds a hostile tree).
constexpr int kMaxWalkDepth = 32;

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

// "<prefix><64 hex><suffix>" -> the hex, else empty.
std::string_view id_between(std::string_view comp, std::string_view prefix,
                            std::string_view suffix) {
  if (!starts_with(comp, prefix) || !ends_with(comp, suffix))
    return {};
  const std::string_view id =
      comp.substr(prefix.size(), comp.size() - prefix.size() - suffix.size());
  if (id.size() != kContainerIdLen || !is_lower_hex(id))
    return {};
  return id;
}

// A pod UID as the kubelet writes it: 8-4-4-4-12 hex digits, with '_' for
// '-' under the systemd driver. Returned with dashes; empty if it is none.
std::string pod_uid(std::string_view text) {
  if (text.size() != kPodUidLen)
    return {};
  std::string uid(text);
  for (std::size_t i = 0; i < uid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash) {
      if (uid[i] != '-' && uid[i] != '_')
        return {};
      uid[i] = '-';
    } else if (!is_lower_hex(std::string_view(&uid[i], 1))) {
      return {};
    }
  }
  return uid;
}

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    if (next > pos)
      out.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

// The path of `dir` below `mount`, "/" for the mount itself.
std::string relative(const std::string &mount, const std::string &dir) {
  if (dir.size() <= mount.size())
    return "/";
  return dir.substr(mount.size());
}

std::uint32_t depth_of(std::string_view rel) {
  return static_cast<std::uint32_t>(components(rel).size());
}

} // namespace

ContainerRef parse_container(std::string_view path) {
  ContainerRef ref;
  bool in_kubepods = false;
  std::string_view parent;
  for (std::string_view comp : components(path)) {
    std::string_view id;
    std::string_view runtime;
    if (!(id = id_between(comp, "docker-", ".scope")).empty()) {
      runtime = "docker";
    } else if (!(id = id_between(comp, "cri-containerd-", ".scope")).empty()) {
      runtime = "containerd";
    } else if (!(id = id_between(comp, "crio-", ".scope")).empty()) {
      runtime = "crio";
    } else if (!(id = id_between(comp, "libpod-", ".scope")).empty() ||
               !(id = id_between(comp, "libpod-", "")).empty()) {
      runtime =
          "podman"; // systemd driver; cgroupfs: /libpod_parent/libpod-<id>
    } else if (comp.size() == kContainerIdLen && is_lower_hex(comp)) {
      // cgroupfs drivers: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>
      if (parent == "docker") {
        id = comp;
        runtime = "docker";
      } else if (in_kubepods && starts_with(parent, "pod")) {
        id = comp;
        runtime = "";
      }
    }
    if (!id.empty()) {
      ref.id = std::string(id);
      ref.runtime = std::string(runtime);
    }

    if (starts_with(comp, "kubepods"))
      in_kubepods = true;
    if (in_kubepods) {
      // systemd: kubepods-pod<uid>.slice, kubepods-<qos>-pod<uid>.slice
      const std::size_t at = comp.rfind("-pod");
      if (starts_with(comp, "kubepods") && at != std::string_view::npos &&
          ends_with(comp, ".slice")) {
        constexpr std::size_t kSliceLen = 6; // ".slice"
        std::string uid =
            pod_uid(comp.substr(at + 4, comp.size() - at - 4 - kSliceLen));
        if (!uid.empty())
          ref.pod_uid = std::move(uid);
      } else if (starts_with(comp, "pod")) { // cgroupfs: pod<uid>
        std::string uid = pod_uid(comp.substr(3));
        if (!uid.empty())
          ref.pod_uid = std::move(uid);
      }
    }
    parent = comp;
  }
  return ref;
}

void StaticCgroupNames::add(std::uint64_t id, std::string path) {
  CgroupInfo info;
  info.container = parse_container(path);
  info.path = std::move(path);
  table_[id] = std::move(info);
}

const CgroupInfo *StaticCgroupNames::find(std::uint64_t id) {
  auto it = table_.find(id);
  return it == table_.end() ? nullptr : &it->second;
}

std::string cgroup2_mount_from_mountinfo(std::string_view mountinfo) {
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options... - fstype source ...
    const std::size_t sep = line.find(" - ");
    if (sep == std::string::npos)
      continue;
    std::istringstream rest(line.substr(sep + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype != "cgroup2")
      continue;
    std::istringstream head(line.substr(0, sep));
    std::string f[5];
    for (auto &x : f)
      head >> x;
    if (f[3] != "/") // a bind mount of a subtree: not the root
      continue;
    // mountinfo escapes ' ', '\t', '\n', '\\' as \ooo
    std::string point;
    for (std::size_t i = 0; i < f[4].size(); ++i) {
      if (f[4][i] == '\\' && i + 3 < f[4].size()) {
        const std::string oct = f[4].substr(i + 1, 3);
        if (oct.size() == 3 && std::all_of(oct.begin(), oct.end(), [](char c) {
              return c >= '0' && c <= '7';
            })) {
          point.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
          i += 3;
          continue;
        }
      }
      point.push_back(f[4][i]);
    }
    return point;
  }
  return {};
}

bool cgroup_path_under(std::string_view path, std::string_view ancestor) {
  if (ancestor == "/" || ancestor.empty())
    return !path.empty() && path[0] == '/';
  if (!starts_with(path, ancestor))
    return false;
  return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

std::unique_ptr<CgroupTree> CgroupTree::open(std::size_t max_entries) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  std::string mount = cgroup2_mount_from_mountinfo(text.str());
  if (mount.empty())
    return nullptr;
  return std::make_unique<CgroupTree>(std::move(mount), max_entries);
}

CgroupTree::CgroupTree(std::string mount, std::size_t max_entries)
    : mount_(std::move(mount)), max_entries_(max_entries) {
  while (mount_.size() > 1 && mount_.back() == '/')
    mount_.pop_back();
  walk();
}

void CgroupTree::walk() {
  last_walk_ = std::chrono::steady_clock::now();
  walked_ = true;
  // Iterative depth-first walk; directories only (cgroups), no symlinks.
  struct Dir {
    std::string path;
    int depth;
  };
  std::vector<Dir> todo{{mount_, 0}};
  while (!todo.empty() && by_id_.size() < max_entries_) {
    Dir d = std::move(todo.back());
    todo.pop_back();
    struct stat st {};
    if (lstat(d.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      continue;
    const auto id = static_cast<std::uint64_t>(st.st_ino);
    if (!by_id_.count(id)) {
      CgroupInfo info;
      info.path = relative(mount_, d.path);
      info.container = parse_container(info.path);
      by_id_.emplace(id, std::move(info));
    }
    if (d.depth >= kMaxWalkDepth)
      continue;
    DIR *dir = opendir(d.path.c_str());
    if (!dir)
      continue;
    while (const dirent *e = readdir(dir)) {
      if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
        continue;
      const std::string_view name = e->d_name;
      if (name == "." || name == "..")
        continue;
      todo.push_back({d.path + "/" + std::string(name), d.depth + 1});
    }
    closedir(dir);
  }
}

const CgroupInfo *CgroupTree::find(std::uint64_t id) {
  if (id == 0)
    return nullptr;
  auto it = by_id_.find(id);
  if (it != by_id_.end())
    return &it->second;
  if (std::chrono::steady_clock::now() - last_walk_ < std::chrono::seconds(1))
    return nullptr;
  walk();
  it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<CgroupTree::Resolved>
CgroupTree::resolve(std::string_view arg) const {
  if (arg.empty() || arg.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::string full;
  if (cgroup_path_under(arg, mount_))
    full = std::string(arg);
  else if (arg[0] == '/')
    full = mount_ + std::string(arg);
  else
    full = mount_ + "/" + std::string(arg);
  while (full.size() > mount_.size() && full.back() == '/')
    full.pop_back();
  // No "..": a cgroup argument must name a cgroup below the mount.
  for (std::string_view c : components(full))
    if (c == "..")
      return std::nullopt;
  struct stat st {};
  struct statfs fs {};
  if (stat(full.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      statfs(full.c_str(), &fs) != 0 ||
      static_cast<unsigned long>(fs.f_type) !=
          0x63677270UL) // CGROUP2_SUPER_MAGIC
    return std::nullopt;
  Resolved r;
  r.id = static_cast<std::uint64_t>(st.st_ino);
  r.path = relative(mount_, full);
  r.level = depth_of(r.path);
  return r;
}

std::vector<CgroupTree::Resolved>
CgroupTree::containers_matching(std::string_view prefix) {
  walk();
  std::vector<Resolved> found;
  for (const auto &[id, info] : by_id_) {
    if (info.container.id.empty() || !starts_with(info.container.id, prefix))
      continue;
    Resolved r;
    r.id = id;
    r.path = info.path;
    r.level = depth_of(info.path);
    found.push_back(std::move(r));
  }
  // One per container: its outermost cgroup.
  std::sort(found.begin(), found.end(),
            [](const Resolved &a, const Resolved &b) {
              return a.level != b.level ? a.level < b.level : a.path < b.path;
            });
  std::vector<Resolved> out;
  for (Resolved &r : found) {
    const std::string id = by_id_[r.id].container.id;
    const bool seen =
        std::any_of(out.begin(), out.end(), [&](const Resolved &o) {
          return by_id_[o.id].container.id == id;
        });
    if (!seen)
      out.push_back(std::move(r));
  }
  return out;
}

std::shared_ptr<CgroupTree> cgroup_tree() {
  static std::shared_ptr<CgroupTree> tree = CgroupTree::open();
  return tree;
}

} // namespace tcptrail
