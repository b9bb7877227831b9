// sprint::remove_tree: what std::filesystem::remove_all did for the training runs, model folders and the bench
// (see atomic_file.h for why it replaced it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sprint/atomic_file.h"
#include "test_util.h"

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesNestedFoldersAndFilesButNotLinkTargets) {
  const fs::path root = sprint::test::temp_dir("remove-tree");
  const fs::path tree = root / "tree", outside = root / "outside.txt";
  fs::create_directories(tree / "a" / "b" / "c");
  fs::create_directories(tree / "empty");
  std::ofstream(tree / "top.txt") << "x";
  std::ofstream(tree / "a" / "b" / "c" / "deep.bin") << "y";
  std::ofstream(outside) << "keep me";
  fs::create_symlink(outside, tree / "a" / "link-to-file");
  fs::create_directory_symlink(root, tree / "a" / "link-to-root");  // not followed: root and its files stay

  std::string error = "stale";
  EXPECT_TRUE(sprint::remove_tree(tree.string(), &error));
  EXPECT_EQ(error, "");
  EXPECT_FALSE(fs::exists(fs::symlink_status(tree)));
  EXPECT_TRUE(fs::exists(outside));
  EXPECT_TRUE(fs::is_directory(root));
}

TEST(RemoveTree, MissingPathIsNotAnErrorAndAFileIsRemoved) {
  const fs::path root = sprint::test::temp_dir("remove-tree-file");
  std::string error;
  EXPECT_TRUE(sprint::remove_tree((root / "nothing-here").string(), &error));
  EXPECT_EQ(error, "");
  std::ofstream(root / "single.txt") << "z";
  EXPECT_TRUE(sprint::remove_tree((root / "single.txt").string()));
  EXPECT_FALSE(fs::exists(root / "single.txt"));
}

TEST(RemoveTree, ReportsWhatItCouldNotRemove) {
  // A path whose parent is a file: lstat fails with ENOTDIR, and the message names the path.
  const fs::path root = sprint::test::temp_dir("remove-tree-error");
  std::ofstream(root / "file") << "f";
  std::string error;
  EXPECT_FALSE(sprint::remove_tree((root / "file" / "below").string(), &error));
  EXPECT_NE(error.find("file/below"), std::string::npos) << error;
}
