// Container attribution: container ids from real-world cgroup paths, the
// cgroup2 mount from mountinfo, the tree walk and the user-side --cgroup
// check, and the cgroup fields of each output format.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "cgroup.h"
#include "error.h"
#include "filter.h"
#include "format/formatter.h"

namespace tcptrail {
namespace {

const std::string kId =
    "4f1c8d2e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
const std::string kId2 =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct PathCase {
  const char *what;
  std::string path;
  std::string id, runtime, pod;
};

// Paths as /proc/PID/cgroup shows them on real hosts (ids replaced).
const PathCase kPaths[] = {
    {"docker, systemd driver", "/system.slice/docker-" + kId + ".scope", kId,
     "docker", ""},
    {"docker, cgroupfs driver", "/docker/" + kId, kId, "docker", ""},
    {"docker, cgroupfs driver, absolute fs path",
     "/sys/fs/cgroup/docker/" + kId, kId, "docker", ""},
    {"docker in docker: the inner container wins",
     "/system.slice/docker-" + kId + ".scope/docker/" + kId2, kId2, "docker",
     ""},
    {"containerd, kubelet systemd driver, burstable pod with underscores",
     "/kubepods.slice/kubepods-burstable.slice/"
     "kubepods-burstable-pod3e9c1a52_5b2f_4c1e_9d0a_7f6e5d4c3b2a.slice/"
     "cri-containerd-" +
         kId + ".scope",
     kId, "containerd", "3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a"},
    {"containerd, guaranteed pod",
     "/kubepods.slice/kubepods-pod3e9c1a52_5b2f_4c1e_9d0a_7f6e5d4c3b2a.slice/"
     "cri-containerd-" +
         kId + ".scope",
     kId, "containerd", "3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a"},
    {"CRI-O, besteffort pod",
     "/kubepods.slice/kubepods-besteffort.slice/"
     "kubepods-besteffort-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice/"
     "crio-" +
         kId + ".scope",
     kId, "crio", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
    {"CRI-O conmon: the pod, no container",
     "/kubepods.slice/kubepods-besteffort.slice/"
     "kubepods-besteffort-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice/"
     "crio-conmon-" +
         kId + ".scope",
     "", "", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
    {"kubelet cgroupfs driver",
     "/kubepods/burstable/pod3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a/" + kId, kId,
     "", "3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a"},
    {"pod slice itself (pause-less pod cgroup)",
     "/kubepods.slice/kubepods-burstable.slice/"
     "kubepods-burstable-pod3e9c1a52_5b2f_4c1e_9d0a_7f6e5d4c3b2a.slice",
     "", "", "3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a"},
    {"podman rootful", "/machine.slice/libpod-" + kId + ".scope", kId, "podman",
     ""},
    {"podman rootful, systemd in the container",
     "/machine.slice/libpod-" + kId + ".scope/container", kId, "podman", ""},
    {"podman rootless",
     "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId +
         ".scope",
     kId, "podman", ""},
    {"podman cgroupfs driver", "/libpod_parent/libpod-" + kId, kId, "podman",
     ""},
    {"podman conmon is no container",
     "/machine.slice/libpod-conmon-" + kId + ".scope", "", "", ""},
    {"root", "/", "", "", ""},
    {"user session", "/user.slice/user-1000.slice/session-3.scope", "", "", ""},
    {"system service", "/system.slice/ssh.service", "", "", ""},
    {"docker daemon itself", "/system.slice/docker.service", "", "", ""},
    {"short id is no container id", "/system.slice/docker-4f1c8d2e9a7b.scope",
     "", "", ""},
    {"upper-case hex is not what runtimes write",
     "/system.slice/"
     "docker-4F1C8D2E9A7B6C5D4E3F2A1B0C9D8E7F6A5B4C3D2E1F0A9B8C7D6"
     "E5F4A3B2C1D.scope",
     "", "", ""},
    {"64 hex not under docker or a pod", "/mygroup/" + kId, "", "", ""},
    {"pod<uid> outside kubepods is nothing",
     "/pod3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a/" + kId, "", "", ""},
    {"bad pod uid", "/kubepods.slice/kubepods-podnot_a_uid.slice", "", "", ""},
    {"empty", "", "", "", ""},
};

TEST(ParseContainerTest, RealWorldPaths) {
  for (const PathCase &c : kPaths) {
    const ContainerRef ref = parse_container(c.path);
    EXPECT_EQ(ref.id, c.id) << c.what << ": " << c.path;
    EXPECT_EQ(ref.runtime, c.runtime) << c.what;
    EXPECT_EQ(ref.pod_uid, c.pod) << c.what;
  }
}

TEST(ParseContainerTest, HostileBytesAreNoId) {
  std::string path = "/system.slice/docker-" + kId + ".scope";
  path[30] = '\n';
  EXPECT_EQ(parse_container(path).id, "");
  EXPECT_EQ(parse_container(std::string(4096, '/')).id, "");
  EXPECT_EQ(parse_container("/docker/" + kId + "/").id, kId);
}

TEST(CgroupMountTest, FindsTheCgroup2Root) {
  // Hybrid hierarchy (v1 controllers, v2 at /sys/fs/cgroup/unified).
  const std::string hybrid =
      "35 25 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs "
      "tmpfs ro,mode=755\n"
      "36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime "
      "shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
      "37 35 0:32 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup "
      "rw,memory\n";
  EXPECT_EQ(cgroup2_mount_from_mountinfo(hybrid), "/sys/fs/cgroup/unified");
  const std::string unified =
      "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - "
      "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  EXPECT_EQ(cgroup2_mount_from_mountinfo(unified), "/sys/fs/cgroup");
  // A bind mount of a subtree (a container's view) is skipped for the root.
  const std::string bind =
      "40 23 0:26 /system.slice /mnt/sub rw - cgroup2 cgroup2 rw\n"
      "41 23 0:26 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(cgroup2_mount_from_mountinfo(bind), "/mnt/my cg");
  EXPECT_EQ(cgroup2_mount_from_mountinfo("37 35 0:32 / /x rw - cgroup cgroup "
                                         "rw,memory\n"),
            "");
  EXPECT_EQ(cgroup2_mount_from_mountinfo(""), "");
  EXPECT_EQ(cgroup2_mount_from_mountinfo("garbage without separator\n"), "");
}

TEST(CgroupPathTest, UnderMeansItselfOrBelow) {
  EXPECT_TRUE(cgroup_path_under("/a/b", "/a"));
  EXPECT_TRUE(cgroup_path_under("/a", "/a"));
  EXPECT_TRUE(cgroup_path_under("/a/b/c", "/a/b"));
  EXPECT_FALSE(cgroup_path_under("/ab", "/a"));
  EXPECT_FALSE(cgroup_path_under("/a", "/a/b"));
  EXPECT_TRUE(cgroup_path_under("/anything", "/"));
}

TEST(CgroupFilterTest, DescendantsMatchByPath) {
  auto names = std::make_shared<StaticCgroupNames>();
  names->add(100, "/tt");
  names->add(101, "/tt/a");
  names->add(102, "/tt/a/b");
  names->add(200, "/ttx");
  names->add(300, "/");
  FilterSpec spec;
  spec.cgroup_id = 100;
  spec.cgroup_path = "/tt";
  spec.cgroup_level = 1;
  // Without names only the cgroup itself matches.
  EXPECT_TRUE(cgroup_matches(spec, 100));
  EXPECT_FALSE(cgroup_matches(spec, 101));
  spec.cgroup_names = names;
  EXPECT_TRUE(cgroup_matches(spec, 101));
  EXPECT_TRUE(cgroup_matches(spec, 102));
  EXPECT_FALSE(cgroup_matches(spec, 200));
  EXPECT_FALSE(cgroup_matches(spec, 300));
  EXPECT_FALSE(cgroup_matches(spec, 0));
  EXPECT_FALSE(cgroup_matches(spec, 999)); // unknown

  tt_sock sk{};
  sk.af = 4;
  sk.cgroup_id = 102;
  EXPECT_TRUE(matches(spec, sk, 1, 1));
  sk.cgroup_id = 200;
  EXPECT_FALSE(matches(spec, sk, 1, 1));
  FilterSpec none;
  EXPECT_TRUE(matches(none, sk, 1, 1));
}

TEST(CgroupFilterTest, NoTreeIsAClearError) {
  FilterSpec spec;
  spec.cgroup_arg = "/x";
  try {
    resolve_cgroup_filter(spec, nullptr);
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("cgroup v2"), std::string::npos);
    EXPECT_EQ(e.exit_code(), 2);
  }
  FilterSpec unset;
  EXPECT_NO_THROW(resolve_cgroup_filter(unset, nullptr));
  EXPECT_EQ(unset.cgroup_id, 0u);
}

// A directory tree standing in for the cgroup2 mount: ids are inodes.
class CgroupTreeTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tt-cgroup-unit-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::uint64_t mkdir_p(const std::string &rel) {
    std::filesystem::create_directories(root_ + rel);
    struct stat st {};
    EXPECT_EQ(stat((root_ + rel).c_str(), &st), 0);
    return st.st_ino;
  }
  std::string root_;
};

TEST_F(CgroupTreeTest, MapsInodesToPathsAndContainers) {
  const auto svc = mkdir_p("/system.slice/ssh.service");
  const auto ctr = mkdir_p("/system.slice/docker-" + kId + ".scope");
  const auto pod_ctr = mkdir_p("/machine.slice/libpod-" + kId2 + ".scope");
  const auto inner =
      mkdir_p("/machine.slice/libpod-" + kId2 + ".scope/container");
  CgroupTree tree(root_ + "/", 100);
  EXPECT_EQ(tree.mount(), root_);
  ASSERT_NE(tree.find(svc), nullptr);
  EXPECT_EQ(tree.find(svc)->path, "/system.slice/ssh.service");
  EXPECT_EQ(tree.find(svc)->container.id, "");
  ASSERT_NE(tree.find(ctr), nullptr);
  EXPECT_EQ(tree.find(ctr)->container.id, kId);
  EXPECT_EQ(tree.find(ctr)->container.runtime, "docker");
  ASSERT_NE(tree.find(inner), nullptr);
  EXPECT_EQ(tree.find(inner)->container.id, kId2);
  EXPECT_EQ(tree.find(0), nullptr);

  // Unique prefix: one container, its outermost cgroup.
  auto found = tree.containers_matching(kId2.substr(0, 6));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].id, pod_ctr);
  EXPECT_EQ(found[0].path, "/machine.slice/libpod-" + kId2 + ".scope");
  EXPECT_EQ(found[0].level, 2u);
  // "" matches both: ambiguous.
  EXPECT_EQ(tree.containers_matching("").size(), 2u);
  EXPECT_TRUE(tree.containers_matching("ffff").empty());
}

TEST_F(CgroupTreeTest, LaterCgroupsAreFoundOnAMiss) {
  CgroupTree tree(root_, 100);
  const auto late = mkdir_p("/late.slice");
  // A miss walks again, at most once a second.
  for (int i = 0; i < 30 && !tree.find(late); ++i)
    usleep(100'000);
  ASSERT_NE(tree.find(late), nullptr);
  EXPECT_EQ(tree.find(late)->path, "/late.slice");
}

TEST_F(CgroupTreeTest, BoundedEntries) {
  for (int i = 0; i < 20; ++i)
    mkdir_p("/g" + std::to_string(i));
  CgroupTree tree(root_, 5);
  EXPECT_LE(tree.size(), 5u);
}

TEST_F(CgroupTreeTest, ResolveRefusesWhatIsNoCgroup2) {
  mkdir_p("/a");
  CgroupTree tree(root_, 100);
  // A plain directory is no cgroup (statfs magic), nor is a path with "..".
  EXPECT_FALSE(tree.resolve("/a"));
  EXPECT_FALSE(tree.resolve("/a/../a"));
  EXPECT_FALSE(tree.resolve(""));
  EXPECT_FALSE(tree.resolve("/nonexistent"));
}

// The cgroup fields each format adds, after every existing one.
TEST(CgroupFormatTest, JsonAndCsvFields) {
  auto names = std::make_shared<StaticCgroupNames>();
  names->add(4242, "/kubepods.slice/kubepods-pod3e9c1a52_5b2f_4c1e_9d0a_"
                   "7f6e5d4c3b2a.slice/cri-containerd-" +
                       kId + ".scope");
  names->add(77, "/evil\"\n\x1b[2J");
  Buffer out;
  append_cgroup_json(out, names.get(), 4242);
  EXPECT_EQ(fmt::to_string(out),
            ",\"cgroup_id\":4242,\"cgroup\":\"/kubepods.slice/"
            "kubepods-pod3e9c1a52_5b2f_4c1e_9d0a_7f6e5d4c3b2a.slice/"
            "cri-containerd-" +
                kId + ".scope\",\"container\":\"" + kId +
                "\",\"pod\":\"3e9c1a52-5b2f-4c1e-9d0a-7f6e5d4c3b2a\"");
  out.clear();
  append_cgroup_json(out, names.get(), 0);
  EXPECT_EQ(fmt::to_string(out),
            ",\"cgroup_id\":null,\"cgroup\":null,\"container\":null,"
            "\"pod\":null");
  out.clear();
  append_cgroup_json(out, names.get(), 5); // unknown id: the id only
  EXPECT_EQ(fmt::to_string(out), ",\"cgroup_id\":5,\"cgroup\":null,"
                                 "\"container\":null,\"pod\":null");
  out.clear();
  append_cgroup_json(out, nullptr, 4242);
  EXPECT_EQ(fmt::to_string(out), ",\"cgroup_id\":4242,\"cgroup\":null,"
                                 "\"container\":null,\"pod\":null");
  out.clear();
  append_cgroup_json(out, names.get(), 77); // hostile path: escaped
  EXPECT_EQ(fmt::to_string(out),
            ",\"cgroup_id\":77,\"cgroup\":\"/evil\\\"\\n"
            "\\u001b[2J\",\"container\":null,\"pod\":null");

  out.clear();
  append_cgroup_csv(out, names.get(), 4242);
  EXPECT_EQ(fmt::to_string(out),
            "4242,/kubepods.slice/kubepods-pod3e9c1a52_5b2f_4c1e_9d0a_"
            "7f6e5d4c3b2a.slice/cri-containerd-" +
                kId + ".scope," + kId);
  out.clear();
  append_cgroup_csv(out, names.get(), 0);
  EXPECT_EQ(fmt::to_string(out), ",,");
}

// trace's JSON and CSV: the fields come last, the rest unchanged.
TEST(CgroupFormatTest, TraceRecordsEndWithTheCgroup) {
  auto names = std::make_shared<StaticCgroupNames>();
  names->add(4242, "/system.slice/docker-" + kId + ".scope");
  OutputOptions opts;
  opts.cgroups = names;
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.sk.af = 4;
  ev.sk.cgroup_id = 4242;
  ev.old_state = 1;
  ev.new_state = 4;

  opts.format = Format::Json;
  Buffer js;
  make_formatter(opts)->state(js, ev);
  const std::string j = fmt::to_string(js);
  EXPECT_NE(j.find(",\"cpu_comm\":\"\",\"cgroup_id\":4242,\"cgroup\":\"/"
                   "system.slice/docker-" +
                   kId + ".scope\",\"container\":\"" + kId +
                   "\",\"pod\":null}\n"),
            std::string::npos)
      << j;

  opts.format = Format::Csv;
  Buffer csv;
  auto f = make_formatter(opts);
  f->header(csv);
  f->state(csv, ev);
  const std::string c = fmt::to_string(csv);
  EXPECT_NE(c.find("cpu_pid,cpu_comm,count,cgroup_id,cgroup,container\n"),
            std::string::npos);
  EXPECT_NE(
      c.find(",0,,,4242,/system.slice/docker-" + kId + ".scope," + kId + "\n"),
      std::string::npos)
      << c;
  // Every row has as many fields as the header.
  const auto header_commas =
      std::count(c.begin(), c.begin() + c.find('\n'), ',');
  const std::string row = c.substr(c.find('\n') + 1);
  EXPECT_EQ(std::count(row.begin(), row.end(), ','), header_commas);
  Buffer lost;
  f->lost(lost, 3);
  const std::string l = fmt::to_string(lost);
  EXPECT_EQ(std::count(l.begin(), l.end(), ','), header_commas);
}

} // namespace
} // namespace tcptrail
