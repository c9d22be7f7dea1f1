/// Files given together as one archive: the parts 1…n of one job.
public enum ArchiveParts {
    /// `files` in part order by their names, which must name one job without gaps. Files
    /// whose names do not follow the pattern keep their order; their manifests decide.
    public static func order(_ files: [ArchiveFile]) throws -> [ArchiveFile] {
        guard files.allSatisfy({ $0.part != nil }) else { return files }
        let first = files[0]
        if let other = files.first(where: { $0.account != first.account || $0.job != first.job }) {
            throw ArchivePartsError(
                "\(other.path) and \(first.path) belong to different archive jobs; give the parts of one job together")
        }
        if let other = files.first(where: { $0.generation != first.generation }) {
            throw ArchivePartsError(
                "\(other.path) and \(first.path) are different packings of job \(first.job!) (generations "
                    + "\(other.generation ?? 1) and \(first.generation ?? 1)); give the parts of one generation together"
            )
        }
        let sorted = files.sorted { $0.part! < $1.part! }
        for (index, file) in sorted.enumerated() where file.part != index + 1 {
            throw ArchivePartsError(
                index > 0 && sorted[index - 1].part == file.part
                    ? "part \(file.part!) is given twice (\(sorted[index - 1].path), \(file.path))"
                    : "part \(index + 1) of job \(first.job!) is missing; give every part of the archive")
        }
        return sorted
    }

    /// Checks part `index` (0-based) of `count` against its place and the first part.
    public static func check(_ summary: PartSummary, index: Int, count: Int, first: PartSummary?) throws {
        let manifest = summary.manifest
        let path = summary.file.path
        if let first,
            first.manifest.account != manifest.account || first.manifest.job != manifest.job
                || first.manifest.generation != manifest.generation
        {
            throw ArchiveFileError(
                "\(path) belongs to job \(manifest.job) (generation \(manifest.generation)) of account "
                    + "\(manifest.account), not to job \(first.manifest.job) (generation \(first.manifest.generation)) "
                    + "of account \(first.manifest.account) like \(first.file.path); give the parts of one packing of "
                    + "one job together")
        }
        guard manifest.part == index + 1 else {
            throw ArchiveFileError(
                "\(path) is part \(manifest.part) of job \(manifest.job), where part \(index + 1) belongs; "
                    + "give every part of the archive")
        }
        if index < count - 1 && manifest.isFinal {
            throw ArchiveFileError("\(path) is the last part of job \(manifest.job), but more files were given")
        }
        if index == count - 1 && !manifest.isFinal {
            throw ArchiveFileError(
                "the archive goes on after \(path) (its manifest says more parts follow); give every part, "
                    + "up to the last")
        }
    }
}
