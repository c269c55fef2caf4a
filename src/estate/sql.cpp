// What both backends share. See sql.h.
#include "estate/sql.h"


namespace heirloom::estate::sql {

bool is_postgres(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string statement_head(const std::string& sql) { return sql.substr(0, sql.find_first_of("(\n")); }

Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {  // the connection is gone: SQLite or the server rolled back already
    }
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace heirloom::estate::sql
