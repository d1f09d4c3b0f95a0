#pragma once

// ClusterMap: a generation's clusters by name, in kShards copy-on-write
// shards. Copying a ClusterMap copies kShards pointers; the first write to a
// shard that another map shares copies that shard only. So a generation that
// changes k clusters of N costs O(k * N / kShards) instead of a copy of all N
// (20,000 clusters: a new sandbox or a route-only generation copied every
// name and pointer, 18 ms of the main thread per VHDS+CDS pair), and two
// generations are compared shard by shard, skipping the shards they share
// (diff): what workers (ClusterManager::update) and the publisher do at
// every generation.
//
// Who uses it: DataPlaneConfig::clusters. Built and written on the main
// thread; read by any thread once published (immutable from then on: a
// shard is written in place only while this map is its only owner).

#include <array>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace turnout::proxy {

template <typename V>
class ShardedMap {
 public:
  using Map = absl::flat_hash_map<std::string, V>;
  using value_type = typename Map::value_type;
  static constexpr size_t kShards = 64;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = typename Map::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    const_iterator() = default;
    reference operator*() const { return *it_; }
    pointer operator->() const { return &*it_; }
    const_iterator& operator++() {
      ++it_;
      skipEmpty();
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& o) const {
      return shard_ == o.shard_ && (shard_ == kShards || it_ == o.it_);
    }

   private:
    friend class ShardedMap;
    const_iterator(const ShardedMap* m, size_t shard, typename Map::const_iterator it)
        : m_(m), shard_(shard), it_(it) {}
    void skipEmpty() {
      while (shard_ < kShards && it_ == m_->shards_[shard_]->end()) {
        if (++shard_ < kShards) it_ = m_->shards_[shard_]->begin();
      }
    }
    const ShardedMap* m_ = nullptr;
    size_t shard_ = kShards;
    typename Map::const_iterator it_{};
  };

  ShardedMap() { shards_.fill(emptyShard()); }

  const_iterator begin() const {
    const_iterator it(this, 0, shards_[0]->begin());
    it.skipEmpty();
    return it;
  }
  const_iterator end() const { return const_iterator(this, kShards, {}); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator find(std::string_view name) const {
    const size_t s = shardOf(name);
    auto it = shards_[s]->find(key(name));
    if (it == shards_[s]->end()) return end();
    return const_iterator(this, s, it);
  }
  bool contains(std::string_view name) const { return shards_[shardOf(name)]->contains(key(name)); }
  // Throws std::out_of_range when absent (as std::map::at).
  const V& at(std::string_view name) const { return shards_[shardOf(name)]->at(key(name)); }

  void insert_or_assign(const std::string& name, V value) {
    Map& m = mutableShard(shardOf(name));
    const size_t before = m.size();
    m.insert_or_assign(name, std::move(value));
    size_ += m.size() - before;
  }
  size_t erase(std::string_view name) {
    const size_t s = shardOf(name);
    if (!shards_[s]->contains(key(name))) return 0;  // no copy for a miss
    const size_t n = mutableShard(s).erase(key(name));
    size_ -= n;
    return n;
  }

  // Shard by shard: `sameShard(other, s)` says that shard `s` of both maps
  // is one object (it holds the same entries); shard(s) is its contents.
  bool sameShard(const ShardedMap& other, size_t s) const { return shards_[s] == other.shards_[s]; }
  const Map& shard(size_t s) const { return *shards_[s]; }

  // What this map changed against `before` (null: an empty map), looking
  // only at the shards the two do not share: changed(name, old, value) for
  // an entry that is new (old null) or holds another value, then
  // removed(name, old) for one that went. Returns how many entries are the
  // same in both. The one walk the publisher and each worker make per
  // generation.
  template <class Changed, class Removed>
  size_t diff(const ShardedMap* before, Changed&& changed, Removed&& removed) const {
    size_t same = 0;
    for (size_t s = 0; s < kShards; ++s) {
      if (before != nullptr && sameShard(*before, s)) {
        same += shards_[s]->size();
        continue;
      }
      const Map& now = *shards_[s];
      const Map* old = before != nullptr ? before->shards_[s].get() : nullptr;
      for (const auto& [name, value] : now) {
        auto it = old != nullptr ? old->find(name) : typename Map::const_iterator{};
        const V* prev = old != nullptr && it != old->end() ? &it->second : nullptr;
        if (prev != nullptr && *prev == value) {
          ++same;
        } else {
          changed(name, prev, value);
        }
      }
      if (old == nullptr) continue;
      for (const auto& [name, value] : *old) {
        if (!now.contains(name)) removed(name, value);
      }
    }
    return same;
  }

 private:
  // Debian's abseil has its own string_view.
  static absl::string_view key(std::string_view s) { return absl::string_view(s.data(), s.size()); }
  static size_t shardOf(std::string_view name) {
    // The top bits: the shard's own table probes with the low ones.
    return static_cast<size_t>(absl::Hash<absl::string_view>{}(key(name)) >> 32) % kShards;
  }
  static const std::shared_ptr<Map>& emptyShard() {
    static const std::shared_ptr<Map> kEmpty = std::make_shared<Map>();
    return kEmpty;
  }
  Map& mutableShard(size_t s) {
    // Written in place only while this map is its only owner (the shared
    // empty shard always has other owners).
    if (shards_[s].use_count() != 1) shards_[s] = std::make_shared<Map>(*shards_[s]);
    return *shards_[s];
  }

  std::array<std::shared_ptr<Map>, kShards> shards_;  // never null
  size_t size_ = 0;
};

}  // namespace turnout::proxy
