/// HTTP-date parsing (RFC 9110 §5.6.7), for `If-Modified-Since` and `Last-Modified`.
///
/// Recipients must accept all three formats:
/// ```
/// Sun, 06 Nov 1994 08:49:37 GMT    ; IMF-fixdate (what senders use)
/// Sunday, 06-Nov-94 08:49:37 GMT   ; obsolete RFC 850 format
/// Sun Nov  6 08:49:37 1994         ; ANSI C's asctime() format
/// ```
/// ```swift
/// HTTPDate.secondsSinceEpoch("Sun, 06 Nov 1994 08:49:37 GMT")   // 784111777
/// ```
public enum HTTPDate {
    /// The time a field value names, in whole seconds since the Unix epoch, or `nil` when it
    /// is not a valid HTTP-date (which the caller must then ignore).
    /// - Parameters:
    ///   - value: The field value.
    ///   - now: The current time in seconds since the epoch, to place two-digit RFC 850 years
    ///     (a year more than 50 years ahead is read as the past century's).
    public static func secondsSinceEpoch(_ value: String, now: Int64? = nil) -> Int64? {
        let tokens = value.utf8.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "-") })
        let day: Int
        let month: Int
        var year: Int
        let time: Substring.UTF8View
        switch tokens.count {
        case 6:
            // IMF-fixdate or RFC 850: weekday, day, month, year, time, "GMT".
            guard String(Substring(tokens[5])) == "GMT", let parsedDay = number(tokens[1]), let parsedMonth = monthNumber(tokens[2]),
                let parsedYear = number(tokens[3])
            else { return nil }
            day = parsedDay
            month = parsedMonth
            year = parsedYear
            time = tokens[4]
            if tokens[3].count == 2 {
                let current = civilYear(secondsSinceEpoch: now ?? 0)
                year += current / 100 * 100
                if now != nil, year > current + 50 { year -= 100 }
            } else if tokens[3].count != 4 {
                return nil
            }
        case 5:
            // asctime: weekday, month, day, time, year.
            guard let parsedMonth = monthNumber(tokens[1]), let parsedDay = number(tokens[2]), let parsedYear = number(tokens[4]),
                tokens[4].count == 4
            else { return nil }
            day = parsedDay
            month = parsedMonth
            year = parsedYear
            time = tokens[3]
        default:
            return nil
        }
        let parts = time.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ $0.count == 2 }), let hour = number(parts[0]), let minute = number(parts[1]),
            let second = number(parts[2]), hour < 24, minute < 60, second <= 60, (1...31).contains(day)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    static func number(_ digits: Substring.UTF8View) -> Int? {
        guard !digits.isEmpty, digits.count <= 4 else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    static func monthNumber(_ name: Substring.UTF8View) -> Int? {
        guard name.count == 3 else { return nil }
        let lowered = String(Substring(name)).lowercased()
        return months.firstIndex(of: lowered).map { $0 + 1 }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The Gregorian year of a time.
    static func civilYear(secondsSinceEpoch seconds: Int64) -> Int {
        let days = Int(seconds / 86_400) + 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }
}
