// uid-filter: the answer depends on who asks. root reads "hello root\n", uid 65534 (nobody) is
// refused at open with EACCES, anyone else reads "hello uid N\n".
//   sudo ./uid-filter [/dev/whoami]   then: cat /dev/whoami; setpriv --reuid=1000 cat /dev/whoami
#include <fusd/fusd.hpp>
#include <iostream>

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        if (req.caller().uid == 65534)
            return req.reply_error(EACCES);
        std::string text = req.caller().uid == 0 ? "hello root\n" : "hello uid " + std::to_string(req.caller().uid) + "\n";
        req.file().state() = std::make_shared<std::string>(text);
        req.reply_ok();
    };
    cb.read = [](fusd::Request req) {
        auto &rest = *std::static_pointer_cast<std::string>(req.file().state());
        std::string out = rest.substr(0, req.size());
        rest.erase(0, out.size());
        req.reply_data(out);
    };
    try {
        fusd::Loop loop;
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "whoami";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        std::cout << "serving " << dev.path() << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "uid-filter: " << e.what() << "\n";
        return 1;
    }
}
