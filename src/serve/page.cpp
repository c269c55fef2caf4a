// The estate page at / (web/index.html, app.js, style.css, compiled in by CMake).
#include <string_view>

#include "serve/server_impl.h"

namespace heirloom::serve {

extern const std::string_view kIndexHtml, kAppJs, kStyleCss;

void add_page_routes(Server::Impl& s) {
  auto serve = [&s](const char* path, std::string_view body, const char* type) {
    s.http.Get(path, [body, type](const httplib::Request&, httplib::Response& res) {
      res.set_content(body.data(), body.size(), type);
    });
  };
  serve("/", kIndexHtml, "text/html; charset=utf-8");
  serve("/index.html", kIndexHtml, "text/html; charset=utf-8");
  serve("/app.js", kAppJs, "text/javascript; charset=utf-8");
  serve("/style.css", kStyleCss, "text/css; charset=utf-8");
}

}  // namespace heirloom::serve
