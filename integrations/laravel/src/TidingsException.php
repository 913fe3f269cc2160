<?php

namespace Tidings\Laravel;

use RuntimeException;

/** tidings refused a request ($status 4xx/5xx), or could not be reached ($status null). */
class TidingsException extends RuntimeException
{
    /** @var int|null */
    public $status;

    /** @var string */
    public $error;

    /** @var mixed */
    public $detail;

    public function __construct(?int $status, string $error, $detail, ?\Throwable $previous = null)
    {
        $text = is_string($detail) ? $detail : json_encode($detail);
        parent::__construct(($status ?? 'no answer') . " {$error}: {$text}", (int) $status, $previous);
        $this->status = $status;
        $this->error = $error;
        $this->detail = $detail;
    }
}
