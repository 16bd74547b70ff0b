// hello: a device whose every open reads "Hello, world!\n" once, then end of file.
//   sudo ./hello [/dev/hello] [--backend fuse]      then: cat /dev/hello
#include <cstring>
#include <fusd/fusd.hpp>
#include <iostream>

int main(int argc, char **argv)
{
    std::string name = argc > 1 ? argv[1] : "hello";
    fusd::DeviceOptions options;
    options.name = name;
    options.mode = 0444;
    if (argc > 3 && std::strcmp(argv[2], "--backend") == 0)
        options.backend = fusd::parse_backend(argv[3]).value_or(fusd::Backend::automatic);

    static const std::string text = "Hello, world!\n";
    fusd::Callbacks callbacks;
    callbacks.open = [](fusd::Request req) {
        req.file().state() = std::make_shared<std::size_t>(0); // how much this open has read
        req.reply_ok();
    };
    callbacks.read = [](fusd::Request req) {
        auto &pos = *std::static_pointer_cast<std::size_t>(req.file().state());
        std::string_view rest = std::string_view(text).substr(pos).substr(0, req.size());
        pos += rest.size();
        req.reply_data(rest);
    };
    try {
        fusd::Loop loop;
        fusd::Device &dev = loop.add(options, callbacks);
        std::cout << "serving " << dev.path() << " (" << fusd::to_string(dev.backend()) << ")" << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "hello: " << e.what() << "\n";
        return 1;
    }
}
