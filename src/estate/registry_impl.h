// What the registry's source files share: the connection.
#pragma once
#include "estate/sqlite.h"
#include "heirloom/estate.h"

namespace heirloom::estate {

struct Registry::Impl {
  sql::Db db;
};

}  // namespace heirloom::estate
