// What the registry's source files share: the connection.
#pragma once
#include "estate/sql.h"
#include "heirloom/estate.h"

namespace heirloom::estate {

struct Registry::Impl {
  sql::Db db;
  const char* added_order() const;
};

}  // namespace heirloom::estate
