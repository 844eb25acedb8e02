import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Output to the terminal: results on standard output, notes and the progress line on
/// standard error. The progress line is drawn only when standard error is a terminal, so
/// redirected output and `--format json` stay clean.
enum Terminal {
    /// Whether standard error is a terminal (and so may show a progress line).
    static let stderrIsTTY: Bool = isatty(STDERR_FILENO) == 1

    /// Whether a progress line is showing now and must be erased before other output.
    private static let progressShown = Mutex(false)

    /// Writes `text` and a newline to standard output.
    static func write(_ text: String) {
        clearProgress()
        writeRaw(text + "\n", to: STDOUT_FILENO)
    }

    /// Writes a note to standard error.
    static func note(_ text: String) {
        clearProgress()
        writeRaw(text + "\n", to: STDERR_FILENO)
    }

    /// Writes an error line to standard error.
    static func writeError(_ text: String) {
        clearProgress()
        writeRaw(text + "\n", to: STDERR_FILENO)
    }

    /// Replaces the progress line (terminals only).
    static func progress(_ text: String) {
        guard stderrIsTTY else { return }
        progressShown.withLock { shown in
            shown = true
            writeRaw("\r\u{1B}[2K" + text, to: STDERR_FILENO)
        }
    }

    /// Erases the progress line, if one is showing.
    static func clearProgress() {
        guard stderrIsTTY else { return }
        progressShown.withLock { shown in
            if shown {
                writeRaw("\r\u{1B}[2K", to: STDERR_FILENO)
                shown = false
            }
        }
    }

    private static func writeRaw(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                guard let base = buffer.baseAddress else { return }
                let written = systemWrite(fd, base + offset, buffer.count - offset)
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// `write(2)`, under a name that the `Terminal.write` method does not shadow.
private func systemWrite(_ fd: Int32, _ pointer: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(fd, pointer, count)
}
